/**
 * A connection closed with the client's body unread is closed gently. Node ends such a connection
 * right after the answer (`Connection: close`), and closing a socket whose receive queue still
 * holds bytes makes the kernel send a reset: a client still writing its body then fails its next
 * write and drops the connection, often before it read the answer, so a 401, 413 or 415 reaches
 * it as a network error. Instead the answer goes out with the write side's end (FIN), the gateway
 * reads nothing more (a refused client must not make it read gigabytes, and so it does not see the
 * client's own close either), and the socket is destroyed after LINGER_MS, or at once should the
 * connection fail: time enough to read the answer. The unread bytes wait in the kernel's receive
 * buffer meanwhile, not in the process.
 */
import type { Socket } from 'node:net';

/** How long a closed connection waits for the client before it is reset. */
export const LINGER_MS = 1000;

/** Makes Node's close of `socket` after the answer (destroySoon) a lingering one. */
export function lingerOnClose(socket: Socket): void {
  socket.destroySoon = lingeringClose;
}

/** Closes `socket` the same way now, after what has been written to it (an answer of its own). */
export function closeLingering(socket: Socket): void {
  lingeringClose.call(socket);
}

function lingeringClose(this: Socket): void {
  this.end();
  // Node has just resumed the request to discard the rest of its body, and starts reading again
  // on the next tick: reading stops now and after that. (The HTTP parser reads the socket's handle
  // itself, so pause() would not stop it: the handle is stopped.)
  stopReading(this);
  setImmediate(stopReading, this);
  const timer = setTimeout(destroy, LINGER_MS, this);
  timer.unref();
  this.once('close', () => clearTimeout(timer));
}

function stopReading(socket: Socket): void {
  (socket as unknown as { _handle: { readStop(): number } | null })._handle?.readStop();
}

function destroy(socket: Socket): void {
  socket.destroy();
}
