/*
 * The public /api/meta/* endpoints, called with the seller's session cookie
 * (HttpOnly: this script never sees it, and there are no tokens on the client).
 */

const API = "/api/meta";

/** A refused call: HTTP status (0: no answer), the catalogue's error_code and any `fields` messages. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body.error_code);
    this.status = status;
    this.code = body.error_code;
    this.fields = body.fields || null;
  }
}

/** The page's own language (`<html lang>`), so the server's messages match the page around them. */
function pageLanguage() {
  return document.documentElement.lang || "id";
}

export async function api(method, path, { body, headers } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "Accept-Language": pageLanguage(), ...headers },
  };
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
