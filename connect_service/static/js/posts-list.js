/*
 * PostsList: the seller's scheduled posts (format, media count) with each target's result
 * (status, its id on Meta, when it was published, what went wrong, the first comment's
 * status; DESIGN §13.2), polled while any is still queued or publishing, with "Muat lagi"
 * paging, cancelling, changing a queued post ("Ubah", in the ScheduleForm) and retrying what
 * failed ("Coba lagi"; "Konfirmasi & coba lagi", asked first, for what may be live already; §13.3).
 */

import { api } from "./api.js";
import { $, el, formatDateTime, show, truncate, withBusy } from "./dom.js";
import { errorSpec, facebookLink, messageFor, showNotice } from "./errors.js";
import { actions, state } from "./state.js";

const POSTS_PAGE_SIZE = 20;
const POSTS_MAX_LIMIT = 100;
const POLL_MS = 5000;

const POST_STATUS_LABELS = {
  queued: "Terjadwal",
  publishing: "Sedang dipublikasikan",
  published: "Terbit",
  partially_published: "Sebagian terbit",
  unconfirmed: "Belum pasti",
  failed: "Gagal",
  cancelled: "Dibatalkan",
};
const ACTIVE_POST_STATUSES = new Set(["queued", "publishing"]);
const TARGET_STATUS_LABELS = {
  pending: "Menunggu",
  published: "Terbit",
  failed: "Gagal",
  unconfirmed: "Belum pasti",
  skipped: "Tidak dipilih",
};
// The targets in the API body's `targets`, in publishing order, with the key of their id on Meta.
const TARGETS = [
  { name: "facebook", label: "Facebook", idKey: "post_id", idLabel: "ID postingan" },
  { name: "instagram", label: "Instagram", idKey: "media_id", idLabel: "ID media" },
];
const COMMENT_STATUS_LABELS = {
  pending: "Menunggu",
  published: "Terkirim",
  failed: "Gagal",
  unconfirmed: "Belum pasti",
};
const FORMAT_LABELS = { post: "Postingan", reel: "Reel", story: "Story" };
// What a retry re-queues (DESIGN §13.3); the server decides, this only chooses the buttons.
const RETRYABLE_CODES = new Set(["meta_unavailable", "rate_limited", "publishing_limit_reached", "internal_error",
  "token_expired"]);
// A published post too: a first comment may have failed on a live target.
const RETRYABLE_POSTS = new Set(["failed", "partially_published", "unconfirmed", "published"]);

function targetsOf(post) {
  return TARGETS.map((spec) => ({ spec, target: post.targets && post.targets[spec.name] }))
    .filter(({ target }) => target && target.status !== "skipped");
}

/** Queued and nothing of it started: the server takes a PATCH (else 409 not_editable). */
export function isEditable(post) {
  return post.status === "queued" && targetsOf(post).every(({ spec, target }) =>
    target.status === "pending" && !target[spec.idKey]);
}

/** What "Coba lagi" would re-queue, and the targets only a confirmed retry would (they may be live). */
function retryChoices(post) {
  const choices = { retryable: false, unconfirmed: [] };
  if (!RETRYABLE_POSTS.has(post.status)) return choices;
  for (const { spec, target } of targetsOf(post)) {
    const comment = target.comment;
    if (target.status === "failed" && RETRYABLE_CODES.has(target.error_code)) choices.retryable = true;
    if (target.status === "published" && comment && comment.status === "failed" &&
        RETRYABLE_CODES.has(comment.error_code)) choices.retryable = true;
    if (target.status === "unconfirmed" || (target.status === "published" && comment &&
        comment.status === "unconfirmed")) choices.unconfirmed.push(spec.label);
  }
  return choices;
}

function actionButtonFor(action, text, label, extra = "") {
  return el("button", { className: `button small ${extra} post-${action}`.replace(/\s+/g, " ").trim(), text,
    attrs: { type: "button", "data-action": action, "aria-label": label } });
}

function targetLabel(status, postStatus) {
  // A target still "pending" on a post that will not run any more was simply never posted.
  if (status === "pending" && !ACTIVE_POST_STATUSES.has(postStatus)) return "Tidak diposting";
  return TARGET_STATUS_LABELS[status] || status;
}

/** What went wrong on a target that did not publish: its own message, else the catalogue's for its code. */
function targetErrorText(target, status) {
  if (status === "published" || status === "skipped") return "";
  if (target.error_message) return target.error_message;
  return target.error_code ? messageFor(target.error_code) : "";
}

function fact(className, term, value) {
  return el("div", { className: `target-fact ${className}` }, [el("dt", { text: term }), value]);
}

function commentFact(comment) {
  const status = comment.status || "pending";
  const parts = [el("span", { className: `comment-status cstatus-${status}`, text: COMMENT_STATUS_LABELS[status] || status })];
  if (status === "failed" && comment.error_code) {
    parts.push(document.createTextNode(` – ${messageFor(comment.error_code)}`));
  }
  return fact("target-comment", "Komentar pertama", el("dd", { attrs: { "data-comment-status": status } }, parts));
}

/** One target's result: status, then its id on Meta, when it was published and the first comment. */
function targetItem(spec, target, postStatus) {
  const status = (target && target.status) || "skipped";
  const item = el("li", { className: `target target-${spec.name}`, attrs: { "data-target-status": status } }, [
    el("div", { className: "target-line" }, [
      el("span", { className: "target-name", text: spec.label }),
      el("span", { className: `target-status tstatus-${status}`, text: targetLabel(status, postStatus) }),
    ]),
  ]);
  if (!target || status === "skipped") return item;
  const facts = [];
  if (target[spec.idKey]) {
    facts.push(fact("target-id", spec.idLabel, el("dd", { className: "mono", text: target[spec.idKey] })));
  }
  if (target.published_at) {
    facts.push(fact("target-published-at", "Terbit pada", el("dd", {}, [
      el("time", { text: formatDateTime(target.published_at), attrs: { datetime: target.published_at } }),
    ])));
  }
  if (target.comment) facts.push(commentFact(target.comment));
  if (facts.length) item.append(el("dl", { className: "target-facts" }, facts));
  const errorText = targetErrorText(target, status);
  if (errorText) item.append(el("p", { className: "target-error", text: errorText }));
  return item;
}

/** "Postingan · 4 media", "Reel · 1 media", "Postingan · tanpa media" (an earlier post: its media_url). */
function formatSummary(post) {
  const count = Array.isArray(post.media) ? post.media.length : post.media_url ? 1 : 0;
  const format = FORMAT_LABELS[post.format] || FORMAT_LABELS.post;
  return `${format} · ${count ? `${count} media` : "tanpa media"}`;
}

function postErrorText(post) {
  if (post.error_message && !(post.status === "cancelled" && post.error_message === "Dibatalkan.")) {
    return post.error_message;
  }
  if (post.error_code && post.status !== "cancelled") return messageFor(post.error_code);
  return "";
}

function postRow(post) {
  const status = post.status;
  const caption = post.caption ? truncate(post.caption, 140) : "(tanpa caption)";
  const timeLabel = el("time", { className: "post-time", text: formatDateTime(post.publish_at),
    attrs: { datetime: post.publish_at } });
  const row = el("li", { className: `post post-${status}`, attrs: { "data-job-id": post.job_id, "data-status": status } }, [
    el("div", { className: "post-head" }, [
      el("span", { className: "post-when" }, [document.createTextNode("Jadwal "), timeLabel]),
      el("span", { className: `badge post-status pstatus-${status}`, text: POST_STATUS_LABELS[status] || status }),
    ]),
    el("p", { className: "post-format muted", text: formatSummary(post) }),
    el("p", { className: `post-caption${post.caption ? "" : " muted"}`, text: caption }),
    el("ul", { className: "post-targets", attrs: { "aria-label": "Hasil per tujuan" } },
      TARGETS.map((spec) => targetItem(spec, post.targets && post.targets[spec.name], status))),
  ]);
  // What a target says for itself is shown with it; the post's own line is for what is not.
  const targetsExplain = TARGETS.some((spec) => {
    const target = post.targets && post.targets[spec.name];
    return target && targetErrorText(target, target.status);
  });
  const errorText = targetsExplain ? "" : postErrorText(post);
  if (errorText) row.append(el("p", { className: "post-error", text: errorText }));
  const codes = [post.error_code, ...Object.values(post.targets || {}).map((t) => t && t.error_code)];
  if (!ACTIVE_POST_STATUSES.has(status) && codes.some((code) => code && errorSpec(code).action === "fix_on_meta")) {
    row.append(el("p", { className: "post-fix" }, [facebookLink()]));
  }
  if (status === "queued" && post.attempts > 0 && post.next_attempt_at) {
    row.append(el("p", { className: "post-retry muted", text: `Dicoba lagi ${formatDateTime(post.next_attempt_at)}` }));
  }
  const controls = [];
  if (isEditable(post)) controls.push(actionButtonFor("edit", "Ubah", `Ubah postingan ${caption}`));
  const retry = retryChoices(post);
  if (retry.retryable) controls.push(actionButtonFor("retry", "Coba lagi", `Coba lagi postingan ${caption}`, "primary"));
  if (retry.unconfirmed.length) {
    controls.push(actionButtonFor("confirm-retry", "Konfirmasi & coba lagi",
      `Konfirmasi dan coba lagi postingan ${caption}`));
  }
  if (status === "queued") {
    controls.push(actionButtonFor("cancel", "Batalkan", `Batalkan postingan ${caption}`, "danger-outline"));
  }
  if (controls.length) row.append(el("div", { className: "post-actions" }, controls));
  return row;
}

/** Say which posts changed status since the last refresh, in the polite live region. */
function announceChanges(posts) {
  const changes = [];
  for (const post of posts) {
    const before = state.seenStatuses.get(post.job_id);
    if (before && before !== post.status) {
      changes.push(`${truncate(post.caption || "Postingan", 40)}: ${POST_STATUS_LABELS[post.status] || post.status}.`);
    }
    state.seenStatuses.set(post.job_id, post.status);
  }
  if (changes.length) $("posts-live").textContent = changes.join(" ");
}

function renderPosts() {
  announceChanges(state.posts);
  const list = $("posts");
  const focused = document.activeElement;
  const focusedRow = focused && list.contains(focused) ? focused.closest("[data-job-id]") : null;
  const focusedJob = focusedRow ? focusedRow.dataset.jobId : null;
  const focusedAction = focused && focused.dataset ? focused.dataset.action : null;

  list.replaceChildren(...state.posts.map(postRow));
  show($("posts-empty"), state.posts.length === 0);
  show($("posts-more"), Boolean(state.nextCursor));

  if (focusedJob) {
    const row = list.querySelector(`[data-job-id="${CSS.escape(focusedJob)}"]`);
    const target = row && (row.querySelector(`[data-action="${focusedAction}"]`) || null);
    if (target) target.focus();
    else $("posts-refresh").focus();
  }
}

function schedulePoll() {
  window.clearTimeout(state.pollTimer);
  state.pollTimer = null;
  if (document.hidden) return;
  if (state.posts.some((post) => ACTIVE_POST_STATUSES.has(post.status))) {
    state.pollTimer = window.setTimeout(refreshPosts, POLL_MS);
  }
}

async function fetchPosts(limit, cursor) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (cursor) query.set("cursor", cursor);
  return api("GET", `/schedule?${query}`);
}

/** The first page again, as many posts as are shown now (so "Muat lagi" pages stay). */
export async function loadPosts() {
  const limit = Math.min(POSTS_MAX_LIMIT, Math.max(POSTS_PAGE_SIZE, state.posts.length));
  try {
    const page = await fetchPosts(limit, null);
    state.posts = page.items || [];
    state.nextCursor = page.next_cursor || null;
    show($("posts-error"), false);
    renderPosts();
  } catch (error) {
    if (error.status === 401) {
      actions.renderSignedOut();
      return;
    }
    const box = $("posts-error");
    box.textContent = messageFor(error.code);
    show(box);
  } finally {
    schedulePoll();
  }
}

function refreshPosts() {
  return loadPosts();
}

async function loadMorePosts(button) {
  if (!state.nextCursor) return;
  await withBusy(button, async () => {
    try {
      const page = await fetchPosts(POSTS_PAGE_SIZE, state.nextCursor);
      const known = new Set(state.posts.map((post) => post.job_id));
      state.posts = state.posts.concat((page.items || []).filter((post) => !known.has(post.job_id)));
      state.nextCursor = page.next_cursor || null;
      renderPosts();
    } catch (error) {
      const box = $("posts-error");
      box.textContent = messageFor(error.code);
      show(box);
    }
  });
  if (!button.hidden) button.focus();
  else $("posts-refresh").focus();
}

async function cancelPost(button) {
  const row = button.closest("[data-job-id]");
  if (!row) return;
  await withBusy(button, async () => {
    try {
      await api("DELETE", `/schedule/${encodeURIComponent(row.dataset.jobId)}`);
      showNotice("Postingan dibatalkan.");
    } catch (error) {
      const box = $("posts-error");
      box.textContent = messageFor(error.code);
      show(box);
    }
  });
  await loadPosts();
}

function showPostsError(code) {
  const box = $("posts-error");
  box.textContent = messageFor(code);
  show(box);
}

function postOf(row) {
  return state.posts.find((post) => post.job_id === row.dataset.jobId) || null;
}

/** POST …/retry (with `confirm_unconfirmed` once the seller confirmed), then the list again. */
async function retryPost(button, body) {
  const row = button.closest("[data-job-id]");
  if (!row) return;
  show($("posts-error"), false);
  await withBusy(button, async () => {
    try {
      await api("POST", `/schedule/${encodeURIComponent(row.dataset.jobId)}/retry`, { body });
      showNotice("Postingan dijadwalkan untuk dicoba lagi.");
    } catch (error) {
      if (error.status === 401) {
        actions.renderSignedOut();
        return;
      }
      showPostsError(error.code);
    }
  });
  await loadPosts();
}

function onPostAction(button) {
  const row = button.closest("[data-job-id]");
  const post = row ? postOf(row) : null;
  if (!post) return;
  switch (button.dataset.action) {
    case "cancel":
      cancelPost(button);
      break;
    case "edit":
      actions.editPost(post);
      break;
    case "retry":
      retryPost(button, {});
      break;
    case "confirm-retry":
      actions.confirmRetry({ ...post, unconfirmedLabels: retryChoices(post).unconfirmed },
        () => retryPost(button, { confirm_unconfirmed: true }));
      break;
    default:
      break;
  }
}

export function bindPostsList() {
  $("posts-refresh").addEventListener("click", (event) => withBusy(event.currentTarget, loadPosts));
  $("posts-more").addEventListener("click", (event) => loadMorePosts(event.currentTarget));
  $("posts").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) onPostAction(button);
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.connection !== null) loadPosts();
    else schedulePoll();
  });
}
