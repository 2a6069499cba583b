/** An SSE event a rule had to read but could not is replaced by this error, never passed on. */
export const UNREADABLE = JSON.stringify({
  jsonrpc: '2.0',
  id: null,
  error: { code: -32002, message: 'upstream sent an invalid response' },
});
