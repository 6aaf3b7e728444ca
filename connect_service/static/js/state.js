/*
 * What the sections share: the page's state, and the few page-wide actions a section
 * may start (wired by main.js, so that no module imports another in a circle).
 */

export const state = {
  isDemo: false,
  loginUrl: null,
  catalogue: {},
  connection: null,
  posts: [],
  nextCursor: null,
  pollTimer: null,
  seenStatuses: new Map(), // job_id -> status, to announce changes (not whole lists) to screen readers
  unanswered: null, // {key, body}: a schedule request that got no answer, retried with the same key
  editing: null, // {jobId, publishAt}: the queued post the schedule form is changing (PATCH), if any
};

export const actions = {
  /** Start connecting at Meta (ConnectionStatusCard). */
  startConnect: async (_button) => undefined,
  /** Open the page picker (PagePickerModal). */
  openPagePicker: async () => undefined,
  /** Show the card as signed out (ConnectionStatusCard). */
  renderSignedOut: () => undefined,
  /** Load a queued post into the ScheduleForm to change it. */
  editPost: (_post) => undefined,
  /** Ask before retrying what may be live already; `onYes` retries (the retry confirmation dialog). */
  confirmRetry: (_post, _onYes) => undefined,
};
