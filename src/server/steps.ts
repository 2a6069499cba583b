/** Builds the pipeline's steps from the config, once: nothing is re-validated per request. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.ts';
import type {
  AuthenticateStep,
  InspectStep,
  RateLimitStep,
  SessionStep,
  TransportStep,
} from '../pipeline/ports.ts';
import type { GatewayDeps } from './gateway.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import { ALLOW_ALL, compileGrants } from '../policy/grants.ts';
import { createKeyring } from '../auth/keyring.ts';
import { createSessionBinder, MIN_SESSION_SECRET_BYTES, sessionSecret } from '../auth/session-binding.ts';
import { createAnonymous, createAuthenticate, WWW_AUTHENTICATE } from '../pipeline/authenticate.ts';
import { createSessionStep } from '../pipeline/session.ts';
import { compileLimits, inFlightDefault } from '../ratelimit/policy.ts';
import type { LimitDefaults } from '../ratelimit/policy.ts';
import { createRateLimitStore } from '../ratelimit/create.ts';
import { createStreamCounter } from '../ratelimit/streams.ts';
import { createRateLimit } from '../pipeline/rate-limit.ts';
import { createInspect } from '../pipeline/inspect.ts';
import type { Principal } from '../auth/principal.ts';
import { TaskOwnership } from '../policy/tasks.ts';
import { createRequestTagger } from '../integrity/request-tag.ts';
import type { RequestTagger } from '../integrity/request-tag.ts';
import { PendingTags } from '../integrity/cancels.ts';
import { createEventIds } from '../integrity/event-ids.ts';
import { createCursors } from '../integrity/cursors.ts';
import type { Cursors } from '../integrity/cursors.ts';
import type { EventIds } from '../integrity/event-ids.ts';
import { createIntegrityStep } from '../integrity/step.ts';
import type { IntegrityStep } from '../integrity/step.ts';
import { createOAuth } from '../auth/oauth/authenticator.ts';
import type { OAuth } from '../auth/oauth/authenticator.ts';
import { createEndpointSessions } from '../transport/sse/endpoint.ts';
import { createStreamMatcher } from '../transport/sse/responses.ts';
import { createSseTransport } from '../transport/sse/transport.ts';
import { createPinning, PinSightings } from '../pinning/pins.ts';
import type { Pinning } from '../pinning/pins.ts';
import { logPinReport } from '../pinning/report.ts';

/** How long start-up waits for the Redis store before serving. */
const STORE_READY_WAIT_MS = 2000;
/** How long start-up waits for the authorization server's signing keys before serving. */
const KEYS_READY_WAIT_MS = 2000;

/** The per-request steps, rebuilt from the config at start and on every reload (see reload.ts). */
export interface Steps {
  readonly authenticate: AuthenticateStep;
  readonly sessions: SessionStep | undefined;
  readonly inspect: InspectStep;
  readonly integrity: IntegrityStep;
  readonly rateLimit: RateLimitStep;
}

/**
 * What outlives a reload, built once at start: the rate-limit store and its buckets, open-stream
 * counts, task owners, pending request tags, the session secret (it may be random) and what is keyed
 * by it, the OAuth resource server (its metadata routes and key refresh) and the transport. The
 * settings these are built from need a restart (reload.ts lists the live ones).
 */
export interface Durable {
  readonly sessions: SessionStep | undefined;
  /** Request tags (keyed by the session secret) and the tags of requests still pending. */
  readonly tagger: RequestTagger;
  /** Event ids sealed for each principal (keyed by the session secret). */
  readonly eventIds: EventIds;
  readonly cursors: Cursors;
  readonly pending: PendingTags;
  /** Pinning shared with the HTTP+SSE transport (built once); undefined: each reload builds its own. */
  readonly pinning: Pinning | undefined;
  /**
   * With that shared pinning: whether its lockfile now holds other text than it was read with (a
   * reload cannot apply it, and says so). Undefined when each reload reads the lockfile itself.
   */
  readonly lockfileChanged: (() => boolean) | undefined;
  /** What pinned lists showed since start, which every pinning built on a reload reads on. */
  readonly pinSightings: PinSightings;
  readonly rateLimit: RateLimitStep;
  readonly tasks: TaskOwnership;
  /** The OAuth resource server (metadata routes, readiness), when `auth.oauth` is set. */
  readonly oauth: OAuth | undefined;
  readonly transport: TransportStep | undefined;
  close(): Promise<void>;
}

const ANONYMOUS: Principal = Object.freeze({
  kind: 'anonymous' as const,
  name: 'anonymous',
  keyId: undefined,
  bindingId: 'anonymous',
  grants: ALLOW_ALL,
  limits: undefined,
});

export async function createDurable(config: Config, deps: GatewayDeps): Promise<Durable> {
  const { log, env } = deps;
  const oauth = createOAuth(config, {
    now: deps.clock.now,
    mono: deps.clock.mono,
    log,
    ...(deps.oauthTuning ? { tuning: deps.oauthTuning } : {}),
  });
  // The session secret keys session binding and request tags (each with its own derived key).
  const secret = config.auth.allow_unauthenticated
    ? sessionSecret(config.auth.session_secret, randomBytes)
    : secretFor(config, env, log);
  const sessions = config.auth.allow_unauthenticated
    ? undefined
    : createSessionStep(createSessionBinder(secret));
  const store = await createRateLimitStore(config.rate_limit, { now: deps.clock.mono, logger: log });
  if ('ready' in store && typeof store.ready === 'function') {
    // Give Redis a moment at start so the first requests are not decided by on_store_error.
    const up = await (store as { ready(ms: number): Promise<boolean> }).ready(STORE_READY_WAIT_MS);
    if (!up)
      log.warn(
        { store: 'redis' },
        `rate limit store not reachable yet: on_store_error=${config.rate_limit.on_store_error} decides until it is`,
      );
  }
  // Store failures are logged by the store itself (rate-limited); each decision goes to the audit line.
  // Each key's buckets come with its principal (rebuilt on reload), so the step itself stays.
  const rateLimit = createRateLimit(store, createStreamCounter(), {}, deps.clock.mono);
  const tasks = new TaskOwnership({ now: deps.clock.mono });
  const tagger = createRequestTagger(secret);
  const eventIds = createEventIds(secret);
  const cursors = createCursors(secret);
  const pending = new PendingTags();
  // The HTTP+SSE transport's stream matcher is built once, so it and the steps share one pinning,
  // read at start (with this transport, pinning changes need a restart).
  // What pinned lists showed outlives reloads (a reload reads the lockfile again, not the lists).
  const pinSightings = new PinSightings();
  let lockfileText: string | undefined;
  const pinning =
    config.upstream.transport === 'sse'
      ? createPinningStep(config, deps, pinSightings, (text) => (lockfileText = text))
      : undefined;
  const lockfile = pinning === undefined ? undefined : config.pinning?.lockfile;
  const lockfileChanged =
    lockfile === undefined
      ? undefined
      : () => {
          try {
            return readFileSync(lockfile, 'utf8') !== lockfileText;
          } catch {
            return true;
          }
        };
  // The older HTTP+SSE transport: its own endpoint sessions; its GET stream matched by request tags.
  const transport =
    config.upstream.transport === 'sse'
      ? createSseTransport({
          // Clients are sent to public_url's path (a reverse proxy's prefix), else the gateway's.
          sessions: createEndpointSessions(
            secret,
            config.upstream.url,
            new URL(config.public_url ?? config.upstream.url).pathname,
            randomBytes,
          ),
          responses: createStreamMatcher(tagger, tasks, cursors, pinning),
        })
      : undefined;
  if (oauth !== undefined && !(await oauth.ready(KEYS_READY_WAIT_MS)))
    log.warn(
      { issuer: config.auth.oauth?.issuer },
      'signing keys not loaded yet: tokens are refused until they are (retrying in the background)',
    );
  return {
    sessions,
    tagger,
    eventIds,
    cursors,
    pending,
    pinning,
    lockfileChanged,
    pinSightings,
    rateLimit,
    tasks,
    oauth,
    transport,
    close: async () => {
      oauth?.close();
      await store.close();
    },
  };
}

/** Builds the steps from a validated config; called at start and on each reload. */
export async function createSteps(config: Config, deps: GatewayDeps, durable: Durable): Promise<Steps> {
  // First: a lockfile that cannot be used stops the start (or the reload) before anything changes.
  const pinning =
    durable.transport !== undefined ? durable.pinning : createPinningStep(config, deps, durable.pinSightings);
  const authenticate = createAuthentication(config, deps, durable.oauth);
  const inspect: InspectStep = createInspect({
    unknownMethods: config.policy.unknown_methods,
    tasks: durable.tasks,
    pinning,
    // audit.* is not reloaded: this is the running audit's setting.
    auditArguments: config.audit.log_arguments,
    cursors: durable.cursors,
  });
  const integrity = createIntegrityStep({
    tagger: durable.tagger,
    tasks: durable.tasks,
    pending: durable.pending,
    pinning,
    eventIds: durable.eventIds,
    cursors: durable.cursors,
  });
  return Object.freeze({
    authenticate,
    sessions: durable.sessions,
    inspect,
    integrity,
    rateLimit: durable.rateLimit,
  });
}

/**
 * Pinning from the config, or undefined when off. Built here with the other steps, so a reload
 * that rebuilds the steps from a fresh config reads the lockfile again (and starts a fresh memory
 * of what was seen). Throws when the lockfile is missing or invalid: the gateway does not start.
 */
function createPinningStep(
  config: Config,
  deps: GatewayDeps,
  sightings: PinSightings,
  /** Told the lockfile's text as it was read. */
  read?: (text: string) => void,
): Pinning | undefined {
  const options = config.pinning;
  if (options === undefined) return undefined;
  return createPinning(options, {
    sightings,
    ...(read === undefined
      ? {}
      : {
          readFile: (path: string) => {
            const text = readFileSync(path, 'utf8');
            read(text);
            return text;
          },
        }),
    report(report) {
      logPinReport(deps.log, report, options.on_change);
      deps.pinViolation?.(report.kind, report.name);
    },
  });
}

function createAuthentication(config: Config, deps: GatewayDeps, oauth: OAuth | undefined): AuthenticateStep {
  if (config.auth.allow_unauthenticated) {
    deps.log.warn(
      {},
      'auth.allow_unauthenticated is set: every request is allowed, without keys or allowlists',
    );
    return createAnonymous(ANONYMOUS);
  }
  // Tokens take this generation's default rate limits (a reload makes a new authenticator).
  const tokens = oauth?.tokens(limitDefaults(config));
  if (config.keys.length === 0 && tokens !== undefined) return createAuthenticate(undefined, tokens);
  if (config.keys.length === 0) {
    deps.log.warn({}, 'no keys configured: every request is refused (run `mcpgate keygen`)');
    return (ctx) => {
      ctx.reason = 'ERR_AUTH_NOT_CONFIGURED';
      throw new GatewayError('ERR_AUTH_NOT_CONFIGURED', {
        headers: { 'www-authenticate': WWW_AUTHENTICATE },
      });
    };
  }
  const keyring = createKeyring(config.keys, compileGrants, {
    now: deps.clock.now,
    resolveLimits: (key) => compileLimits(`key:${key.label}`, limitDefaults(config), key.rate_limit),
  });
  return createAuthenticate(keyring, tokens);
}

/** `rate_limit` with `max_in_flight` resolved against `upstream.connections` when unset. */
function limitDefaults(config: Config): LimitDefaults {
  const { rate_limit } = config;
  return rate_limit.max_in_flight !== undefined
    ? rate_limit
    : { ...rate_limit, max_in_flight: inFlightDefault(config.upstream.connections) };
}

function secretFor(config: Config, env: GatewayDeps['env'], log: GatewayDeps['log']): Buffer {
  const fromEnv = env.MCPGATE_SESSION_SECRET;
  const configured =
    config.auth.session_secret ??
    (fromEnv && fromEnv.length >= MIN_SESSION_SECRET_BYTES ? fromEnv : undefined);
  if (config.auth.session_secret === undefined && fromEnv && fromEnv.length < MIN_SESSION_SECRET_BYTES) {
    log.warn(
      {},
      `MCPGATE_SESSION_SECRET is ignored: it must be at least ${MIN_SESSION_SECRET_BYTES} characters`,
    );
  }
  if (configured === undefined) {
    log.warn(
      {},
      'no auth.session_secret: sessions are bound with a random secret and will not survive a restart or span replicas',
    );
  }
  return sessionSecret(configured, randomBytes);
}
