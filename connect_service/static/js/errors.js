/*
 * The error catalogue in the page: messages, the notice line, the error panel and
 * the control each catalogue `action` stands for.
 */

import { $, el, show, withBusy } from "./dom.js";
import { actions, state } from "./state.js";

export const BUSINESS_SUITE_URL = "https://business.facebook.com/latest/settings/instagram_account";
// Where a seller fixes what only Meta can fix (restrictions, checks, Page publishing authorization).
const FACEBOOK_URL = "https://www.facebook.com/";
const LOCAL_ERRORS = {
  network_error: {
    message_id: "Tidak dapat menghubungi server Resellio. Periksa koneksi internet Anda.",
    action: "retry",
  },
};

export function errorSpec(code) {
  return state.catalogue[code] || LOCAL_ERRORS[code] || state.catalogue.internal_error ||
    { message_id: "Terjadi kesalahan. Silakan coba lagi.", action: "retry" };
}

export function messageFor(code) {
  return errorSpec(code).message_id;
}

export function showNotice(text, kind = "success") {
  const notice = $("notice");
  notice.className = `notice notice-${kind}`;
  notice.textContent = text;
  show(notice);
}

export function actionButton(label, onClick, { primary = true, id } = {}) {
  const button = el("button", { className: `button${primary ? " primary" : ""}`, text: label,
    attrs: { type: "button", id } });
  button.addEventListener("click", () => onClick(button));
  return button;
}

/** "Buka Facebook": opened by the seller in a new tab, never fetched by this page. */
export function facebookLink() {
  return el("a", { text: "Buka Facebook", className: "external facebook-link",
    attrs: { href: FACEBOOK_URL, target: "_blank", rel: "noopener noreferrer" } });
}

export function businessSuiteLink() {
  return el("a", { text: "Hubungkan Instagram di Meta Business Suite", className: "external",
    attrs: { href: BUSINESS_SUITE_URL, target: "_blank", rel: "noopener noreferrer" } });
}

/**
 * The control for a catalogue `action`. `retry` re-runs `context.retry` when given,
 * else starts connecting again (the usual cure after a failed OAuth round trip).
 */
export function actionControls(action, context = {}) {
  const connect = (label, primary = true) => actionButton(label, (b) => actions.startConnect(b), { primary });
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
      return [actionButton("Coba lagi", (b) => (context.retry ? retryFromPanel(b, context.retry) : actions.startConnect(b)))];
    case "choose_page":
      return [actionButton("Pilih Page", () => actions.openPagePicker())];
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

export function showError(code, context = {}) {
  const panel = $("error-panel");
  panel.querySelector(".error-title").textContent = context.title || "Ada yang perlu diperbaiki";
  $("error-message").textContent = messageFor(code);
  panel.dataset.errorCode = code;
  $("error-action").replaceChildren(...actionControls(errorSpec(code).action, context));
  show(panel);
}

export function hideError() {
  show($("error-panel"), false);
}
