/*
 * Resellio Social Connect page (DESIGN §10): the entry module.
 *
 * Native ES modules, no build step, no framework, no external resources. It is the
 * reference the Next.js dashboard copies, so each section is a module named after the
 * component it stands for: status-card.js (ConnectionStatusCard), dialogs.js
 * (PagePickerModal, the Disconnect confirmation), schedule-form.js (ScheduleForm),
 * posts-list.js (PostsList); api.js calls /api/meta/*, errors.js explains its answers.
 * This module wires them together and handles the OAuth redirect back.
 */

import { bindDialogs, openPagePicker, openRetryConfirm } from "./dialogs.js";
import { $ } from "./dom.js";
import { hideError, showError, showNotice } from "./errors.js";
import { bindPostsList, loadPosts } from "./posts-list.js";
import { bindScheduleForm, initScheduleForm, startEdit } from "./schedule-form.js";
import { actions, state } from "./state.js";
import { bindStatusCard, loadStatus, renderSignedOut, startConnect } from "./status-card.js";

// ?meta_status=… after Meta's redirect back

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

function readCatalogue() {
  try {
    return JSON.parse($("error-catalogue").textContent || "{}");
  } catch (_badJson) {
    return {};
  }
}

function bindEvents() {
  bindStatusCard();
  bindDialogs();
  $("error-dismiss").addEventListener("click", () => {
    hideError();
    $("main").focus();
  });
  bindScheduleForm();
  bindPostsList();
}

async function init() {
  state.catalogue = readCatalogue();
  state.isDemo = document.body.dataset.demo === "true";
  state.loginUrl = document.body.dataset.loginUrl || null;
  Object.assign(actions, { startConnect, openPagePicker, renderSignedOut, editPost: startEdit,
    confirmRetry: openRetryConfirm });
  initScheduleForm();
  bindEvents();

  const redirectResult = takeMetaStatus();
  const signedIn = await loadStatus();
  handleMetaStatus(redirectResult, signedIn);
  if (signedIn) await loadPosts();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
