/*
 * Small DOM, time and busy-state helpers shared by every section of the page.
 */

const BUSY_LABEL = "Memproses…";

export const $ = (id) => document.getElementById(id);

export function el(tag, { className, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

export function show(node, visible = true) {
  if (node) node.hidden = !visible;
}

const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatDateTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTimeFormat.format(date);
}

export function truncate(text, max) {
  const chars = Array.from(text || "");
  return chars.length > max ? `${chars.slice(0, max - 1).join("").trimEnd()}…` : chars.join("");
}

export function newIdempotencyKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  // Not a secure context (plain http on a LAN address): same 122 random bits, by hand.
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** `YYYY-MM-DDTHH:MM[:SS]` in the browser's time zone for a Date. */
export function toLocalInputValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local value (local wall time) as an ISO-8601 instant in UTC (`…Z`). */
export function localInputToIso(value) {
  if (!value) return null;
  const date = new Date(value); // date-time forms without an offset are local time
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** Run `task` with `button` disabled, aria-busy and labelled "Memproses…". */
export async function withBusy(button, task) {
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
