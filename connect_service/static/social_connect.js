/*
 * Resellio Social Connect page (DESIGN §10).
 *
 * Plain ES2020, no framework, no external resources. It only calls the public
 * /api/meta/* endpoints with the seller's session cookie (HttpOnly: this script
 * never sees it, and there are no tokens on the client). It is the reference the
 * Next.js dashboard copies, so each part is a small function named after the
 * component it stands for: ConnectionStatusCard, PagePickerModal, ScheduleForm,
 * PostsList.
 */
"use strict";

(() => {
  const API = "/api/meta";
  const BUSINESS_SUITE_URL = "https://business.facebook.com/latest/settings/instagram_account";
  // Where a seller fixes what only Meta can fix (restrictions, checks, Page publishing authorization).
  const FACEBOOK_URL = "https://www.facebook.com/";
  const MAX_CAPTION = 2200;
  const POSTS_PAGE_SIZE = 20;
  const POSTS_MAX_LIMIT = 100;
  const POLL_MS = 5000;
  const BUSY_LABEL = "Memproses…";

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
  const TARGET_NAMES = { facebook: "Facebook", instagram: "Instagram" };

  // The server's validation messages (English, from marshmallow) in the page's language.
  const FIELD_MESSAGES = {
    "Missing data for required field.": "Wajib diisi.",
    "Field may not be null.": "Wajib diisi.",
    "Not a valid aware datetime.": "Waktu tidak valid.",
    "Not a valid datetime.": "Waktu tidak valid.",
    "Must not be more than 5 minutes in the past.": "Waktu terbit tidak boleh lebih dari 5 menit yang lalu.",
    "Must be within a year from now.": "Waktu terbit harus dalam satu tahun ke depan.",
    "Must be at most 2200 characters.": "Caption maksimal 2.200 karakter.",
    "Must have at most 30 hashtags.": "Caption maksimal berisi 30 hashtag.",
    "Must have at most 20 @mentions.": "Caption maksimal berisi 20 @mention.",
    "Must be an absolute https URL.": "Harus URL lengkap yang diawali https://.",
    "Must be an absolute https or http URL.": "Harus URL lengkap yang diawali https:// atau http://.",
    "Must not carry a user name or password.": "URL tidak boleh berisi nama pengguna atau kata sandi.",
    "Must be reachable from the internet (Meta fetches it).":
      "URL harus bisa diakses dari internet, karena Meta mengambilnya langsung.",
    "Choose at least one target.": "Pilih minimal satu tujuan.",
    "Each target at most once.": "Setiap tujuan hanya boleh dipilih sekali.",
    "Required when instagram is a target.": "Wajib diisi jika Instagram dipilih.",
    "A link is only posted to Facebook.": "Link hanya diposting ke Facebook. Pilih Facebook atau kosongkan link.",
    "A post needs a caption, a media_url or a link.": "Isi caption, URL gambar, atau link.",
    "Longer than maximum length 2048.": "Maksimal 2.048 karakter.",
  };
  const FIELD_INPUTS = {
    caption: "caption",
    media_url: "media-url",
    link: "link",
    targets: "targets",
    publish_at: "publish-at",
  };
  const LOCAL_ERRORS = {
    network_error: {
      message_id: "Tidak dapat menghubungi server Resellio. Periksa koneksi internet Anda.",
      action: "retry",
    },
  };

  const $ = (id) => document.getElementById(id);
  const state = {
    isDemo: false,
    loginUrl: null,
    catalogue: {},
    connection: null,
    posts: [],
    nextCursor: null,
    pollTimer: null,
    seenStatuses: new Map(), // job_id -> status, to announce changes (not whole lists) to screen readers
    unanswered: null, // {key, body}: a schedule request that got no answer, retried with the same key
  };

  // ---------- small helpers ----------

  function el(tag, { className, text, attrs } = {}, children = []) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function show(node, visible = true) {
    if (node) node.hidden = !visible;
  }

  const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function formatDateTime(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : dateTimeFormat.format(date);
  }

  function truncate(text, max) {
    const chars = Array.from(text || "");
    return chars.length > max ? `${chars.slice(0, max - 1).join("").trimEnd()}…` : chars.join("");
  }

  function newIdempotencyKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    // Not a secure context (plain http on a LAN address): same 122 random bits, by hand.
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /** `YYYY-MM-DDTHH:MM[:SS]` in the browser's time zone for a Date. */
  function toLocalInputValue(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
      `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  /** A datetime-local value (local wall time) as an ISO-8601 instant in UTC (`…Z`). */
  function localInputToIso(value) {
    if (!value) return null;
    const date = new Date(value); // date-time forms without an offset are local time
    return Number.isNaN(date.getTime()) ? null : date.toISOString();
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(status, body) {
      super(body.error_code);
      this.status = status;
      this.code = body.error_code;
      this.fields = body.fields || null;
    }
  }

  async function api(method, path, { body, headers } = {}) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(`${API}${path}`, init);
    } catch (_networkFailure) {
      throw new ApiError(0, { error_code: "network_error" });
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (_notJson) {
      payload = null;
    }
    if (!response.ok) {
      const code = payload && typeof payload.error_code === "string" ? payload.error_code : "internal_error";
      throw new ApiError(response.status, { ...(payload || {}), error_code: code });
    }
    return payload || {};
  }

  function errorSpec(code) {
    return state.catalogue[code] || LOCAL_ERRORS[code] || state.catalogue.internal_error ||
      { message_id: "Terjadi kesalahan. Silakan coba lagi.", action: "retry" };
  }

  function messageFor(code) {
    return errorSpec(code).message_id;
  }

  // ---------- busy state ----------

  /** Run `task` with `button` disabled, aria-busy and labelled "Memproses…". */
  async function withBusy(button, task) {
    if (button && button.getAttribute("aria-busy") === "true") return undefined;
    const label = button ? button.textContent : "";
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.textContent = BUSY_LABEL;
    }
    let keepBusy = false;
    try {
      const result = await task();
      keepBusy = result === "navigating";
      return result;
    } finally {
      if (button && !keepBusy) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
        button.textContent = label;
      }
    }
  }

  // ---------- notices and the error panel ----------

  function showNotice(text, kind = "success") {
    const notice = $("notice");
    notice.className = `notice notice-${kind}`;
    notice.textContent = text;
    show(notice);
  }

  function actionButton(label, onClick, { primary = true, id } = {}) {
    const button = el("button", { className: `button${primary ? " primary" : ""}`, text: label,
      attrs: { type: "button", id } });
    button.addEventListener("click", () => onClick(button));
    return button;
  }

  /** "Buka Facebook": opened by the seller in a new tab, never fetched by this page. */
  function facebookLink() {
    return el("a", { text: "Buka Facebook", className: "external facebook-link",
      attrs: { href: FACEBOOK_URL, target: "_blank", rel: "noopener noreferrer" } });
  }

  function businessSuiteLink() {
    return el("a", { text: "Hubungkan Instagram di Meta Business Suite", className: "external",
      attrs: { href: BUSINESS_SUITE_URL, target: "_blank", rel: "noopener noreferrer" } });
  }

  /**
   * The control for a catalogue `action`. `retry` re-runs `context.retry` when given,
   * else starts connecting again (the usual cure after a failed OAuth round trip).
   */
  function actionControls(action, context = {}) {
    const connect = (label, primary = true) => actionButton(label, (b) => startConnect(b), { primary });
    switch (action) {
      case "reconnect":
        return [connect("Connect ulang")];
      case "connect":
        return [connect("Connect Facebook & Instagram")];
      case "link_instagram":
        return [
          el("p", { className: "action-text",
            text: "Hubungkan akun Instagram Business ke Page ini di Meta Business Suite, lalu klik Connect ulang." }),
          businessSuiteLink(),
          connect("Connect ulang", false),
        ];
      case "switch_account":
        return [
          el("p", { className: "action-text",
            text: "Masuk ke Facebook dengan akun yang menjadi admin atau editor Page tersebut, lalu connect ulang." }),
          connect("Connect ulang"),
        ];
      case "login":
        return state.isDemo && state.loginUrl
          ? [el("a", { className: "button primary", text: "Masuk ke Resellio", attrs: { href: state.loginUrl } })]
          : [el("p", { className: "action-text", text: "Masuk kembali ke dashboard Resellio, lalu buka halaman ini lagi." })];
      case "fix_input":
        return [el("p", { className: "action-text", text: "Periksa kembali isian Anda, lalu coba lagi." })];
      case "wait":
        return [el("p", { className: "action-text", text: "Tunggu beberapa saat, lalu coba lagi." })];
      case "retry":
        return [actionButton("Coba lagi", (b) => (context.retry ? retryFromPanel(b, context.retry) : startConnect(b)))];
      case "choose_page":
        return [actionButton("Pilih Page", () => openPagePicker())];
      case "fix_on_meta":
        return [
          el("p", { className: "action-text",
            text: "Buka Facebook dan ikuti pemberitahuan atau petunjuk di sana. Setelah selesai, connect ulang di halaman ini." }),
          facebookLink(),
        ];
      default:
        return [];
    }
  }

  async function retryFromPanel(button, retry) {
    await withBusy(button, async () => {
      const ok = await retry();
      if (ok !== false && button.isConnected) hideError(); // a new failure has re-rendered the panel
    });
  }

  function showError(code, context = {}) {
    const panel = $("error-panel");
    panel.querySelector(".error-title").textContent = context.title || "Ada yang perlu diperbaiki";
    $("error-message").textContent = messageFor(code);
    panel.dataset.errorCode = code;
    $("error-action").replaceChildren(...actionControls(errorSpec(code).action, context));
    show(panel);
  }

  function hideError() {
    show($("error-panel"), false);
  }

  // ---------- ConnectionStatusCard ----------

  const BADGES = {
    connected: { text: "Connected", className: "badge badge-ok" },
    not_connected: { text: "Not connected", className: "badge badge-neutral" },
    needs_reauth: { text: "Perlu connect ulang", className: "badge badge-warn" },
  };
  // needs_reauth whose cure is on Facebook, not in a new connect.
  const META_ACTION_BADGE = { text: "Perlu tindakan di Facebook", className: "badge badge-warn" };

  function setBadge(status, errorCode) {
    const badge = $("status-badge");
    const fixOnMeta = status === "needs_reauth" && errorSpec(errorCode).action === "fix_on_meta";
    const spec = fixOnMeta ? META_ACTION_BADGE : (BADGES[status] || BADGES.not_connected);
    badge.textContent = spec.text;
    badge.className = spec.className;
    badge.dataset.status = status;
  }

  function finishLoadingCard() {
    $("status-card").setAttribute("aria-busy", "false");
    show($("status-loading"), false);
  }

  function renderSignedOut() {
    finishLoadingCard();
    state.connection = null;
    setBadge("not_connected");
    show($("login-message"));
    for (const id of ["status-intro", "reauth-message", "expiry-banner", "status-details", "status-actions", "schedule-section",
      "posts-section"]) show($(id), false);
  }

  function renderDetails(connection) {
    $("page-name").textContent = connection.page_name || "–";
    $("facebook-page-id").textContent = connection.facebook_page_id || "–";
    const igId = connection.instagram_business_account_id || "–";
    $("ig-user-id").textContent = connection.instagram_username ? `${igId} (@${connection.instagram_username})` : igId;
    const connectedAt = $("connected-at");
    connectedAt.textContent = formatDateTime(connection.connected_at);
    if (connection.connected_at) connectedAt.setAttribute("datetime", connection.connected_at);
    else connectedAt.removeAttribute("datetime");
  }

  function renderConnectButton(status) {
    const button = $("connect-button");
    if (button.getAttribute("aria-busy") === "true") return;
    const connected = status === "connected";
    button.textContent = status === "not_connected" ? "Connect Facebook & Instagram" : "Connect ulang";
    button.className = `button ${connected ? "secondary" : "primary"}${status === "needs_reauth" ? " prominent" : ""}`;
  }

  // The token or Meta's data access ends within 14 days (the API's expiring_soon): ask for a reconnect now.
  function renderExpiryBanner(connection, status) {
    const expiring = status === "connected" && connection.expiring_soon === true;
    if (expiring) {
      const dates = [connection.expires_at, connection.data_access_expires_at].filter(Boolean).sort(
        (a, b) => new Date(a) - new Date(b));
      const when = $("expiry-date");
      when.textContent = formatDateTime(dates[0]);
      if (dates[0]) when.setAttribute("datetime", dates[0]);
      else when.removeAttribute("datetime");
    }
    show($("expiry-banner"), expiring);
  }

  function renderStatus(connection) {
    finishLoadingCard();
    state.connection = connection;
    const status = BADGES[connection.status] ? connection.status : "not_connected";
    const errorCode = connection.error_code || "token_expired";
    const fixOnMeta = status === "needs_reauth" && errorSpec(errorCode).action === "fix_on_meta";
    setBadge(status, errorCode);
    show($("login-message"), false);
    show($("status-intro"), status === "not_connected");
    show($("status-details"), status !== "not_connected");
    if (status !== "not_connected") renderDetails(connection);

    const reauth = $("reauth-message");
    if (status === "needs_reauth") {
      reauth.dataset.errorCode = errorCode;
      reauth.replaceChildren(el("p", { text: messageFor(errorCode) }),
        ...(fixOnMeta ? actionControls("fix_on_meta") : []));
    }
    show(reauth, status === "needs_reauth");
    renderExpiryBanner(connection, status);

    show($("status-actions"));
    renderConnectButton(status);
    show($("disconnect-button"), status !== "not_connected");

    const canSchedule = status === "connected";
    $("schedule-fieldset").disabled = !canSchedule;
    $("schedule-disabled-hint").textContent = fixOnMeta
      ? "Selesaikan dulu di Facebook, lalu connect ulang untuk menjadwalkan postingan baru."
      : status === "needs_reauth"
      ? "Connect ulang dulu untuk menjadwalkan postingan baru."
      : "Hubungkan Facebook & Instagram dulu untuk menjadwalkan postingan.";
    show($("schedule-disabled-hint"), !canSchedule);
    show($("schedule-section"));
    show($("posts-section"));
  }

  async function loadStatus() {
    try {
      renderStatus(await api("GET", "/status"));
      return true;
    } catch (error) {
      if (error.status === 401) {
        renderSignedOut();
        return false;
      }
      finishLoadingCard();
      $("status-badge").textContent = "Tidak diketahui";
      $("status-badge").className = "badge badge-neutral";
      showError(error.code, { title: "Status koneksi tidak bisa dimuat", retry: reloadAll });
      return false;
    }
  }

  async function reloadAll() {
    const signedIn = await loadStatus();
    if (signedIn) await loadPosts();
    return signedIn;
  }

  async function startConnect(button) {
    hideError();
    return withBusy(button, async () => {
      try {
        const { oauth_url: oauthUrl } = await api("GET", "/connect");
        window.location.assign(oauthUrl);
        return "navigating";
      } catch (error) {
        if (error.status === 401) renderSignedOut();
        showError(error.code, { title: "Connect belum bisa dimulai", retry: () => startConnect(null) });
        return undefined;
      }
    });
  }

  // ---------- dialogs ----------

  const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), textarea:not([disabled]), " +
    "select:not([disabled]), [tabindex]:not([tabindex='-1'])";

  function focusables(container) {
    return Array.from(container.querySelectorAll(FOCUSABLE)).filter((node) => !node.closest("[hidden]"));
  }

  /** Keep Tab / Shift+Tab inside an open dialog (showModal makes the page inert; this keeps it off the browser UI). */
  function trapFocus(dialog) {
    dialog.addEventListener("keydown", (event) => {
      if (event.key !== "Tab") return;
      const nodes = focusables(dialog);
      if (!nodes.length) return;
      const first = nodes[0];
      const last = nodes[nodes.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    });
  }

  function openDialog(dialog, focusTarget) {
    dialog.returnFocusTo = document.activeElement instanceof HTMLElement && document.activeElement !== document.body
      ? document.activeElement : null;
    if (!dialog.open) dialog.showModal();
    const target = focusTarget || focusables(dialog)[0];
    if (target) target.focus();
  }

  function closeDialog(dialog) {
    if (dialog.open) dialog.close();
  }

  function restoreFocus(dialog) {
    const back = dialog.returnFocusTo;
    dialog.returnFocusTo = null;
    if (back && document.contains(back) && !back.disabled && !back.closest("[hidden]")) {
      back.focus();
      return;
    }
    const fallback = $("connect-button");
    if (fallback && !fallback.closest("[hidden]")) fallback.focus();
    else $("main").focus();
  }

  // ---------- PagePickerModal ----------

  function pageOption(page) {
    const inputId = `page-option-${page.id}`;
    const reasonId = `page-reason-${page.id}`;
    const disabled = !page.has_instagram;
    const input = el("input", { attrs: { type: "radio", name: "page_id", id: inputId, value: page.id,
      disabled, "aria-describedby": disabled ? reasonId : null } });
    const label = el("label", { attrs: { for: inputId } }, [
      el("span", { className: "page-option-name", text: page.name || page.id }),
      el("span", { className: "page-option-meta",
        text: `Page ID ${page.id} · ${page.has_instagram ? "Instagram Business terhubung" : "Tanpa Instagram"}` }),
    ]);
    const option = el("div", { className: `page-option${disabled ? " is-disabled" : ""}`,
      attrs: { "data-page-id": page.id } }, [input, label]);
    if (disabled) {
      option.append(el("p", { className: "page-option-reason", attrs: { id: reasonId } }, [
        document.createTextNode("Page Facebook belum terhubung ke Instagram Business. "),
        el("a", { text: "Buka Meta Business Suite", className: "external",
          attrs: { href: BUSINESS_SUITE_URL, target: "_blank", rel: "noopener noreferrer" } }),
      ]));
    }
    return option;
  }

  function renderPickerError(code) {
    const box = $("page-picker-error");
    box.dataset.errorCode = code;
    const controls = [];
    if (code === "instagram_not_connected_to_page") controls.push(businessSuiteLink());
    if (code === "selection_expired" || code === "invalid_state") {
      controls.push(actionButton("Connect ulang", (b) => {
        closeDialog($("page-picker"));
        startConnect(b);
      }));
    }
    if (code === "page_not_found") controls.push(el("span", { className: "action-text", text: "Pilih Page lain dari daftar." }));
    box.replaceChildren(el("p", { text: messageFor(code) }), ...controls);
    show(box);
  }

  function renderPickerMessage(text) {
    const box = $("page-picker-error");
    delete box.dataset.errorCode;
    box.replaceChildren(el("p", { text }));
    show(box);
  }

  function resetPicker() {
    $("page-options").replaceChildren();
    show($("page-picker-error"), false);
    show($("page-picker-submit"));
    $("page-picker-submit").disabled = false;
  }

  async function openPagePicker() {
    const dialog = $("page-picker");
    resetPicker();
    show($("page-picker-loading"));
    openDialog(dialog, $("page-picker-cancel"));
    try {
      const { pages } = await api("GET", "/pages");
      show($("page-picker-loading"), false);
      $("page-options").replaceChildren(...pages.map(pageOption));
      if (!pages.some((page) => page.has_instagram)) {
        renderPickerError("instagram_not_connected_to_page");
        $("page-picker-submit").disabled = true;
      }
      const first = dialog.querySelector("input[name=page_id]:not([disabled])");
      if (first) first.focus();
    } catch (error) {
      show($("page-picker-loading"), false);
      renderPickerError(error.code);
      if (error.code === "selection_expired") show($("page-picker-submit"), false);
      const control = $("page-picker-error").querySelector("button, a");
      (control || $("page-picker-cancel")).focus();
    }
  }

  async function submitPagePicker(event) {
    event.preventDefault();
    const chosen = $("page-picker-form").querySelector("input[name=page_id]:checked");
    if (!chosen) {
      renderPickerMessage("Pilih salah satu Page terlebih dahulu.");
      const first = $("page-picker").querySelector("input[name=page_id]:not([disabled])");
      if (first) first.focus();
      return;
    }
    show($("page-picker-error"), false);
    await withBusy($("page-picker-submit"), async () => {
      try {
        const result = await api("POST", "/select-page", { body: { page_id: chosen.value } });
        $("page-picker").dataset.completed = "true";
        closeDialog($("page-picker"));
        hideError();
        showNotice(`Page ${result.page_name || ""} berhasil terhubung ke Resellio.`.replace("  ", " "));
        await loadStatus();
        await loadPosts();
      } catch (error) {
        renderPickerError(error.code);
        if (error.code === "selection_expired") show($("page-picker-submit"), false);
        if (error.status === 401) {
          closeDialog($("page-picker"));
          renderSignedOut();
        }
      }
    });
  }

  function onPickerClosed() {
    const dialog = $("page-picker");
    if (dialog.dataset.completed !== "true" && state.connection && state.connection.status !== "connected") {
      showNotice("Page belum dipilih, jadi koneksi belum selesai. Klik Connect untuk mengulang.", "info");
    }
    delete dialog.dataset.completed;
    restoreFocus(dialog);
  }

  // ---------- Disconnect ----------

  function openDisconnectConfirm() {
    openDialog($("disconnect-confirm"), $("disconnect-confirm-no"));
  }

  async function confirmDisconnect() {
    await withBusy($("disconnect-confirm-yes"), async () => {
      try {
        await api("POST", "/disconnect", { body: {} });
        closeDialog($("disconnect-confirm"));
        hideError();
        showNotice("Koneksi Facebook & Instagram sudah diputus.");
        await loadStatus();
        await loadPosts();
      } catch (error) {
        closeDialog($("disconnect-confirm"));
        if (error.status === 401) renderSignedOut();
        showError(error.code, { title: "Disconnect gagal", retry: confirmDisconnect });
      }
    });
  }

  // ---------- ScheduleForm ----------

  function updateCaptionCount() {
    const length = Array.from($("caption").value).length;
    const counter = $("caption-count");
    counter.textContent = `${length}/${MAX_CAPTION}`;
    counter.classList.toggle("over", length > MAX_CAPTION);
  }

  function defaultPublishAt() {
    const date = new Date(Date.now() + 15 * 60 * 1000);
    date.setSeconds(0, 0);
    return toLocalInputValue(date);
  }

  function clearFieldErrors() {
    for (const node of document.querySelectorAll("#schedule-form .field-error")) {
      node.textContent = "";
      show(node, false);
    }
    for (const node of document.querySelectorAll("#schedule-form [aria-invalid]")) node.removeAttribute("aria-invalid");
    show($("schedule-error"), false);
  }

  function translateFieldMessage(message) {
    if (FIELD_MESSAGES[message]) return FIELD_MESSAGES[message];
    const tooLong = /^Longer than maximum length (\d+)\.$/.exec(message);
    return tooLong ? `Maksimal ${tooLong[1]} karakter.` : message;
  }

  /** Put each `fields` entry ("caption", "targets.0", "_schema", …) next to its input. */
  function showFieldErrors(fields) {
    const leftovers = [];
    let firstInvalid = null;
    for (const [key, messages] of Object.entries(fields || {})) {
      const text = (Array.isArray(messages) ? messages : [String(messages)]).map(translateFieldMessage).join(" ");
      const inputId = FIELD_INPUTS[key.split(".")[0]];
      const errorNode = inputId ? $(`${inputId}-error`) : null;
      if (!errorNode) {
        leftovers.push(text);
        continue;
      }
      errorNode.textContent = errorNode.hidden || !errorNode.textContent ? text : `${errorNode.textContent} ${text}`;
      show(errorNode);
      const input = inputId === "targets" ? $("target-facebook") : $(inputId);
      if (inputId !== "targets") input.setAttribute("aria-invalid", "true");
      firstInvalid = firstInvalid || input;
    }
    if (leftovers.length) showScheduleError(leftovers.join(" "));
    return firstInvalid;
  }

  function showScheduleError(text, controls = []) {
    const box = $("schedule-error");
    box.replaceChildren(document.createTextNode(text), ...controls);
    show(box);
  }

  function readScheduleForm() {
    const caption = $("caption").value;
    const mediaUrl = $("media-url").value.trim();
    const link = $("link").value.trim();
    const targets = ["facebook", "instagram"].filter((name) => $(`target-${name}`).checked);
    const body = { publish_at: localInputToIso($("publish-at").value), caption, targets };
    if (mediaUrl) body.media_url = mediaUrl;
    if (link) body.link = link;
    return body;
  }

  function checkScheduleForm(body) {
    const problems = {};
    if (!body.publish_at) problems.publish_at = ["Isi waktu terbit."];
    if (!body.targets.length) problems.targets = ["Pilih minimal satu tujuan."];
    if (Array.from(body.caption).length > MAX_CAPTION) problems.caption = ["Must be at most 2200 characters."];
    return problems;
  }

  function idempotencyKeyFor(body) {
    const serialized = JSON.stringify(body);
    if (state.unanswered && state.unanswered.body === serialized) return state.unanswered.key;
    state.unanswered = { key: newIdempotencyKey(), body: serialized };
    return state.unanswered.key;
  }

  function resetScheduleForm() {
    $("caption").value = "";
    $("media-url").value = "";
    $("link").value = "";
    $("publish-at").value = defaultPublishAt();
    updateCaptionCount();
  }

  async function submitSchedule(event) {
    event.preventDefault();
    clearFieldErrors();
    const body = readScheduleForm();
    const problems = checkScheduleForm(body);
    if (Object.keys(problems).length) {
      const first = showFieldErrors(problems);
      if (first) first.focus();
      return;
    }
    const key = idempotencyKeyFor(body);
    await withBusy($("schedule-submit"), async () => {
      try {
        await api("POST", "/schedule", { body, headers: { "Idempotency-Key": key } });
        state.unanswered = null;
        resetScheduleForm();
        showNotice("Postingan dijadwalkan.");
        await loadPosts();
      } catch (error) {
        await handleScheduleError(error);
      }
    });
  }

  async function handleScheduleError(error) {
    // Only a request that got no answer may have been stored: keep its key for a retry.
    if (error.status !== 0 && error.status < 500) state.unanswered = null;
    if (error.code === "validation_error" && error.fields) {
      const first = showFieldErrors(error.fields);
      if (first) first.focus();
      return;
    }
    const controls = [];
    if (["token_expired", "permissions_missing", "not_connected", "meta_action_required"].includes(error.code)) {
      await loadStatus(); // the card now shows what to do
    } else if (error.status === 401) {
      renderSignedOut();
      return;
    }
    if (error.code === "token_expired" || error.code === "permissions_missing") {
      controls.push(document.createTextNode(" "), actionButton("Connect ulang", (b) => startConnect(b)));
    } else if (errorSpec(error.code).action === "fix_on_meta") {
      controls.push(document.createTextNode(" "), facebookLink());
    }
    showScheduleError(messageFor(error.code), controls);
  }

  // ---------- PostsList ----------

  function targetLabel(status, postStatus) {
    // A target still "pending" on a post that will not run any more was simply never posted.
    if (status === "pending" && !ACTIVE_POST_STATUSES.has(postStatus)) return "Tidak diposting";
    return TARGET_STATUS_LABELS[status] || status;
  }

  function targetItem(name, target, postStatus) {
    const status = (target && target.status) || "skipped";
    const item = el("li", { className: `target target-${name}`, attrs: { "data-target-status": status } }, [
      el("span", { className: "target-name", text: TARGET_NAMES[name] }),
      el("span", { className: `target-status tstatus-${status}`, text: targetLabel(status, postStatus) }),
    ]);
    if (target && target.error_code && status !== "published") {
      item.title = messageFor(target.error_code);
    }
    return item;
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
      el("p", { className: `post-caption${post.caption ? "" : " muted"}`, text: caption }),
      el("ul", { className: "post-targets", attrs: { "aria-label": "Status per tujuan" } }, [
        targetItem("facebook", post.targets && post.targets.facebook, status),
        targetItem("instagram", post.targets && post.targets.instagram, status),
      ]),
    ]);
    const errorText = postErrorText(post);
    if (errorText) row.append(el("p", { className: "post-error", text: errorText }));
    const codes = [post.error_code, ...Object.values(post.targets || {}).map((t) => t && t.error_code)];
    if (!ACTIVE_POST_STATUSES.has(status) && codes.some((code) => code && errorSpec(code).action === "fix_on_meta")) {
      row.append(el("p", { className: "post-fix" }, [facebookLink()]));
    }
    if (status === "queued" && post.attempts > 0 && post.next_attempt_at) {
      row.append(el("p", { className: "post-retry muted", text: `Dicoba lagi ${formatDateTime(post.next_attempt_at)}` }));
    }
    if (status === "queued") {
      const cancel = el("button", { className: "button small danger-outline post-cancel", text: "Batalkan",
        attrs: { type: "button", "data-action": "cancel", "aria-label": `Batalkan postingan ${caption}` } });
      row.append(el("div", { className: "post-actions" }, [cancel]));
    }
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
  async function loadPosts() {
    const limit = Math.min(POSTS_MAX_LIMIT, Math.max(POSTS_PAGE_SIZE, state.posts.length));
    try {
      const page = await fetchPosts(limit, null);
      state.posts = page.items || [];
      state.nextCursor = page.next_cursor || null;
      show($("posts-error"), false);
      renderPosts();
    } catch (error) {
      if (error.status === 401) {
        renderSignedOut();
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

  // ---------- the OAuth redirect back (?meta_status=…) ----------

  function takeMetaStatus() {
    const url = new URL(window.location.href);
    const metaStatus = url.searchParams.get("meta_status");
    const errorCode = url.searchParams.get("error_code");
    if (metaStatus === null && errorCode === null) return null;
    url.searchParams.delete("meta_status");
    url.searchParams.delete("error_code");
    window.history.replaceState(window.history.state, "", `${url.pathname}${url.search}${url.hash}`);
    return { metaStatus, errorCode };
  }

  function handleMetaStatus(result, signedIn) {
    if (!result) return;
    if (result.metaStatus === "connected") {
      showNotice("Facebook & Instagram berhasil terhubung.");
    } else if (result.metaStatus === "select_page") {
      if (signedIn) openPagePicker();
    } else if (result.metaStatus === "error") {
      const code = result.errorCode && /^[a-z_]{1,64}$/.test(result.errorCode) ? result.errorCode : "internal_error";
      showError(code, { title: "Connect Facebook & Instagram belum berhasil" });
    }
  }

  // ---------- wiring ----------

  function readCatalogue() {
    try {
      return JSON.parse($("error-catalogue").textContent || "{}");
    } catch (_badJson) {
      return {};
    }
  }

  function bindEvents() {
    $("connect-button").addEventListener("click", (event) => startConnect(event.currentTarget));
    $("expiry-reconnect").addEventListener("click", (event) => startConnect(event.currentTarget));
    $("disconnect-button").addEventListener("click", openDisconnectConfirm);
    $("disconnect-confirm-no").addEventListener("click", () => closeDialog($("disconnect-confirm")));
    $("disconnect-confirm-yes").addEventListener("click", confirmDisconnect);
    $("disconnect-confirm").addEventListener("close", () => restoreFocus($("disconnect-confirm")));
    $("page-picker-form").addEventListener("submit", submitPagePicker);
    $("page-picker-cancel").addEventListener("click", () => closeDialog($("page-picker")));
    $("page-picker").addEventListener("close", onPickerClosed);
    $("page-options").addEventListener("change", () => show($("page-picker-error"), false));
    trapFocus($("page-picker"));
    trapFocus($("disconnect-confirm"));
    $("error-dismiss").addEventListener("click", () => {
      hideError();
      $("main").focus();
    });
    $("caption").addEventListener("input", updateCaptionCount);
    $("schedule-form").addEventListener("submit", submitSchedule);
    $("posts-refresh").addEventListener("click", (event) => withBusy(event.currentTarget, loadPosts));
    $("posts-more").addEventListener("click", (event) => loadMorePosts(event.currentTarget));
    $("posts").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action=cancel]");
      if (button) cancelPost(button);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.connection !== null) loadPosts();
      else schedulePoll();
    });
  }

  async function init() {
    state.catalogue = readCatalogue();
    state.isDemo = document.body.dataset.demo === "true";
    state.loginUrl = document.body.dataset.loginUrl || null;
    try {
      $("time-zone").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "lokal";
    } catch (_noIntl) {
      /* keep "lokal" */
    }
    $("publish-at").value = defaultPublishAt();
    updateCaptionCount();
    bindEvents();

    const redirectResult = takeMetaStatus();
    const signedIn = await loadStatus();
    handleMetaStatus(redirectResult, signedIn);
    if (signedIn) await loadPosts();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
