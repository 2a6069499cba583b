/**
 * The pipeline's hook for request tagging and response matching (one step, used by handler.ts):
 * `forward` tags a judged POST body and returns the rewrite that matches and filters its response;
 * `stream` returns the rewrite for a GET stream. Every POST and every GET gets one, so no response
 * reaches the client with an id the gateway did not restore, whatever the principal's grants.
 */
import type { RequestContext } from '../pipeline/context.ts';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import type { ResponseRewrite } from '../proxy/relay.ts';
import type { TaskOwnership } from '../policy/tasks.ts';
import type { PendingTags } from './cancels.ts';
import { exchangeIds, exchangeIdsOf, MatchRewrite, signedIds, tagRequests } from './match.ts';
import type { Filters, ForwardedTag } from './match.ts';
import type { Plan, RequestTagger } from './request-tag.ts';
import type { Pinning } from '../pinning/pins.ts';

export interface IntegrityStep {
  /** The bytes to forward for a judged POST body, and the rewrite for its response. */
  forward(
    ctx: RequestContext,
    bytes: Buffer,
    plans: ReadonlyMap<JsonRpcId, Plan> | undefined,
    sessionId: string | undefined,
  ): { readonly bytes: Buffer; readonly rewrite: ResponseRewrite };
  /** The rewrite for a GET stream (it may replay responses of earlier POSTs). */
  stream(ctx: RequestContext): ResponseRewrite;
  /** The rewrite for a DELETE: it forwards no request, so no response in its body may pass. */
  closing(ctx: RequestContext): ResponseRewrite;
}

export interface IntegrityOptions {
  readonly tagger: RequestTagger;
  readonly tasks: TaskOwnership;
  readonly pending: PendingTags;
  /** Tool-definition pinning, when on: every list a plan filters is judged against the lockfile. */
  readonly pinning?: Pinning | undefined;
}

export function createIntegrityStep(options: IntegrityOptions): IntegrityStep {
  const { tagger, tasks, pending, pinning } = options;
  // One function for every exchange: the key its cancellation waits under travels with the tag.
  const forgetAnswered = (tag: string, forwarded: ForwardedTag) => {
    if (forwarded.pending !== undefined) pending.forget(forwarded.pending, tag);
  };
  function principalOf(ctx: RequestContext) {
    const principal = ctx.principal;
    if (principal === undefined) throw new TypeError('integrity step before authenticate');
    return principal;
  }
  function filtersFor(ctx: RequestContext): Filters {
    const principal = principalOf(ctx);
    return {
      grants: principal.grants,
      tasks: tasks.scope(principal.bindingId),
      pins: pinning?.forList((report) => (ctx.pinReports ??= []).push(report)),
    };
  }
  return {
    forward(ctx, bytes, plans, sessionId) {
      const bindingId = principalOf(ctx).bindingId;
      const messages = ctx.messages ?? [];
      const forwarded = tagRequests(bytes, messages, plans, { tagger, bindingId, sessionId, pending });
      const ids = exchangeIdsOf(forwarded, forgetAnswered);
      // The filters are built when a response first needs them (never for the common small answer).
      return { bytes: forwarded.bytes, rewrite: new MatchRewrite(ids, filtersFor, ctx) };
    },
    stream(ctx) {
      return new MatchRewrite(signedIds(tagger, principalOf(ctx).bindingId), filtersFor, ctx);
    },
    closing(ctx) {
      principalOf(ctx); // the filters are built later: fail here, as the other paths do, without a principal
      return new MatchRewrite(exchangeIds(new Map()), filtersFor, ctx, true);
    },
  };
}
