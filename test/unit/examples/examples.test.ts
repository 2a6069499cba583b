/** Every example a user can copy parses and validates. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { parseConfigEnv, parseConfigText } from '../../../src/config/load.ts';

const read = (path: string) => readFileSync(new URL(`../../../examples/${path}`, import.meta.url), 'utf8');
const HASH = `sha256:${'ab'.repeat(32)}`;
const ENV = {
  MCPGATE_SESSION_SECRET: 'x'.repeat(40),
  ALICE_KEY_HASH: HASH,
  CI_BOT_KEY_HASH: `sha256:${'cd'.repeat(32)}`,
  REDIS_PASSWORD: 'pw',
};
const errorsOf = (text: string, env: Record<string, string> = ENV) =>
  parseConfigText(text, env, Date.now()).issues.filter((i) => i.severity === 'error');

describe('examples', () => {
  for (const path of ['quickstart/mcpgate.yaml', 'compose/mcpgate.yaml', 'replicas/mcpgate.yaml']) {
    it(`${path} validates`, () => assert.deepEqual(errorsOf(read(path)), []));
  }

  it('a config needing secrets names each missing variable', () => {
    const paths = errorsOf(read('compose/mcpgate.yaml'), {}).map((i) => i.message);
    assert.ok(paths.includes('environment variable ALICE_KEY_HASH is not set'));
    assert.ok(paths.includes('environment variable MCPGATE_SESSION_SECRET is not set'));
  });

  it('the Kubernetes sidecar probes /healthz and /readyz and embeds a valid config', () => {
    type Probe = { httpGet: { path: string } };
    type Doc = {
      kind: string;
      spec: {
        template: {
          spec: {
            containers: { name: string; livenessProbe: Probe; readinessProbe: Probe }[];
            volumes: { secret: { secretName: string } }[];
          };
        };
      };
      data: Record<string, string>;
    };
    const docs = parseAllDocuments(read('kubernetes/sidecar.yaml')).map((d) => d.toJS() as Doc);
    const pod = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec;
    const gateway = pod.containers.find((c) => c.name === 'mcpgate')!;
    assert.equal(gateway.livenessProbe.httpGet.path, '/healthz');
    assert.equal(gateway.readinessProbe.httpGet.path, '/readyz');
    assert.equal(pod.volumes[0]!.secret.secretName, 'mcpgate-config');
    const config = docs.find((d) => d.kind === 'ConfigMap')!.data['mcpgate.yaml']!;
    assert.deepEqual(errorsOf(config), []);
  });

  it('compose files publish only the gateway', () => {
    for (const path of ['compose/compose.yaml', 'replicas/compose.yaml']) {
      const services = (
        parseAllDocuments(read(path))[0]!.toJS() as {
          services: Record<string, { ports?: string[]; image?: string }>;
        }
      ).services;
      for (const [name, service] of Object.entries(services)) {
        if (service.ports)
          assert.ok(
            name.startsWith('mcpgate') || name === 'nginx' || name === 'lb',
            `${path}: ${name} is published`,
          );
      }
    }
  });

  it('the Kubernetes sidecar admits only the gateway port: the MCP server, bound to every interface, is not reachable past it', () => {
    type Container = {
      name: string;
      command?: string[];
      args?: string[];
      env?: { name: string; value: string }[];
      ports?: { containerPort: number }[];
    };
    type Doc = {
      kind: string;
      metadata: { name: string };
      spec: {
        template?: { metadata: { labels: Record<string, string> }; spec: { containers: Container[] } };
        podSelector?: { matchLabels: Record<string, string> };
        policyTypes?: string[];
        ingress?: { from?: unknown[]; ports?: { port: number; protocol?: string }[] }[];
      };
    };
    const text = read('kubernetes/sidecar.yaml');
    const docs = parseAllDocuments(text).map((d) => d.toJS() as Doc);
    const deployment = docs.find((d) => d.kind === 'Deployment')!;
    const pod = deployment.spec.template!;
    const server = pod.spec.containers.find((c) => c.name === 'mcp-server')!;
    const gateway = pod.spec.containers.find((c) => c.name === 'mcpgate')!;
    const gatewayPort = gateway.ports![0]!.containerPort;
    const serverPort = Number(server.env!.find((e) => e.name === 'PORT')!.value);
    // server-everything has no bind-address setting: it listens on 0.0.0.0:PORT. So a policy must
    // stand between it and the other pods, and the example must not claim it listens on localhost.
    assert.match(server.command!.join(' '), /server-everything streamableHttp/);
    assert.doesNotMatch(text, /MCP server listens on localhost/i);
    const policies = docs.filter(
      (d) =>
        d.kind === 'NetworkPolicy' &&
        Object.entries(d.spec.podSelector!.matchLabels).every(([k, v]) => pod.metadata.labels[k] === v),
    );
    assert.equal(policies.length, 1, 'one NetworkPolicy selects the pod');
    const policy = policies[0]!.spec;
    assert.deepEqual(policy.policyTypes, ['Ingress']);
    const admitted = policy.ingress!.flatMap((rule) => {
      assert.ok(rule.ports && rule.ports.length > 0, 'every ingress rule names its ports');
      return rule.ports.map((p) => p.port);
    });
    assert.deepEqual(admitted, [gatewayPort]);
    assert.ok(!admitted.includes(serverPort));
    // The README says how to check it in the pod.
    assert.match(text, /ss -ltnp/);
  });

  it('the OAuth walk-through: an environment-only mcpgate that validates, and a realm that fits it', () => {
    type Service = { environment: Record<string, string>; ports?: string[] };
    const services = (
      parseAllDocuments(read('oauth/compose.yaml'))[0]!.toJS() as { services: Record<string, Service> }
    ).services;
    // Compose substitutes ${VAR:-default}; the defaults are what a first `docker compose up` runs.
    const env = Object.fromEntries(
      Object.entries(services.mcpgate!.environment).map(([k, v]) => [
        k,
        String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1'),
      ]),
    );
    assert.equal(env.MCPGATE_CONFIG, '', 'the example runs without a config file');
    const { config, issues } = parseConfigEnv(env, Date.now());
    assert.deepEqual(
      issues.filter((i) => i.severity === 'error'),
      [],
    );
    const oauth = config!.auth.oauth!;
    type Realm = {
      realm: string;
      clientScopes: {
        name: string;
        protocolMappers: { protocolMapper: string; config: Record<string, string> }[];
      }[];
      clients: { clientId: string; defaultClientScopes?: string[]; redirectUris?: string[] }[];
      groups: { name: string }[];
    };
    const realm = JSON.parse(read('oauth/realm.json')) as Realm;
    assert.equal(oauth.issuer, `http://localhost:8081/realms/${realm.realm}`);
    const scope = realm.clientScopes.find((s) => s.name === oauth.required_scopes[0])!;
    const audience = scope.protocolMappers.find((m) => m.protocolMapper === 'oidc-audience-mapper')!;
    assert.equal(
      audience.config['included.custom.audience'],
      config!.public_url,
      'tokens carry the gateway as aud',
    );
    const adminGroup = oauth.grants[0]!.when.includes!;
    assert.ok(realm.groups.some((g) => g.name === adminGroup));
    for (const id of ['mcp-cli', 'mcp-admin', 'claude'])
      assert.ok(realm.clients.find((c) => c.clientId === id)?.defaultClientScopes?.includes(scope.name), id);
    assert.deepEqual(realm.clients.find((c) => c.clientId === 'claude')!.redirectUris, [
      'https://claude.ai/api/mcp/auth_callback',
      'https://claude.com/api/mcp/auth_callback',
    ]);
    assert.deepEqual(services.upstream!.ports, undefined, 'the MCP server is not published');
  });
});
