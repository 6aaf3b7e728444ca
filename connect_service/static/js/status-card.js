/*
 * ConnectionStatusCard: the badge, the connected Page's details, the reconnect and
 * expiry notices, and the Connect / Disconnect buttons.
 */

import { api } from "./api.js";
import { $, el, formatDateTime, show, withBusy } from "./dom.js";
import { actionControls, errorSpec, hideError, messageFor, showError } from "./errors.js";
import { loadPosts } from "./posts-list.js";
import { state } from "./state.js";

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

export function renderSignedOut() {
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

export async function loadStatus() {
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

export async function startConnect(button) {
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

export function bindStatusCard() {
  $("connect-button").addEventListener("click", (event) => startConnect(event.currentTarget));
  $("expiry-reconnect").addEventListener("click", (event) => startConnect(event.currentTarget));
}
