// A real OpenID Connect provider for the console login tests:
// node-oidc-provider on 127.0.0.1 (a free port), with one confidential client
// and test users, its development login and consent forms, a fresh RS256 key,
// and `groups` in the ID token.
//
// Usage: node provider.mjs '<json>' where json is
//   {"client_id": "...", "client_secret": "...", "redirect_uris": ["..."],
//    "users": {"alice": ["reviewers"], ...}, "auth_method": "client_secret_basic"}
// Prints one line `{"issuer": "http://127.0.0.1:PORT"}` when it listens. On
// stderr, per token request: `token-endpoint: ok` or `token-endpoint: <error>`,
// and `issued: <id_token> <access_token>` (the tests check that no token
// the provider issued ever shows up in a page, log line or audit record).
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const users = cfg.users ?? { alice: ['reviewers'] };

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: cfg.client_id ?? 'tollgate-ui',
    client_secret: cfg.client_secret ?? 'test-secret',
    redirect_uris: cfg.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: cfg.auth_method ?? 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  // Any known user logs in with any password through the dev login form.
  async findAccount(_ctx, id) {
    if (!Object.hasOwn(users, id)) return undefined;
    return { accountId: id, async claims() { return { sub: id, groups: users[id] }; } };
  },
  claims: { openid: ['sub', 'groups'] },
  // groups in the ID token itself, as the console reads them.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  ttl: { IdToken: 300, AccessToken: 300, AuthorizationCode: 60, Session: 600, Interaction: 600, Grant: 600 },
});
provider.on('server_error', (_ctx, err) => console.error('provider server_error', err));
provider.on('grant.error', (_ctx, err) => console.error(`token-endpoint: ${err.error ?? err.message}`));
provider.on('grant.success', (ctx) => {
  console.error('token-endpoint: ok');
  console.error(`issued: ${ctx.body?.id_token ?? ''} ${ctx.body?.access_token ?? ''}`);
});

server.on('request', provider.callback());
console.log(JSON.stringify({ issuer }));
process.on('SIGTERM', () => process.exit(0));
