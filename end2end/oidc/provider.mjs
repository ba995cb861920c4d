// A real OpenID Connect provider for Offboard's sign-in tests (the npm package `oidc-provider`),
// on 127.0.0.1 only. Used by server/tests/sso.rs and by end2end/tests/support/oidc.ts.
//
//   node end2end/oidc/provider.mjs [port]
//
// Environment: OIDC_PORT (when no argument; 0 = any free port), OIDC_CLIENT_ID,
// OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI (comma-separated for several), and OIDC_KEY_ID: when
// set, ID tokens are signed with a fresh RSA key of that key id (a restart on the same port with
// another id is a key rotation; with the same id, an impostor signing under a trusted key's
// name). When listening it prints one line `ready <issuer URL>` on stdout.
//
// Sign-in is oidc-provider's development login form (a `login` and a `password` field; any
// password is accepted: these are test accounts). Consent is given automatically, as for a
// company's own application, so the form is the only page a browser sees.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.OIDC_PORT ?? 0);
const clientId = process.env.OIDC_CLIENT_ID ?? 'offboard-test';
const clientSecret = process.env.OIDC_CLIENT_SECRET;
const redirectUris = (process.env.OIDC_REDIRECT_URI ?? '').split(',').map((s) => s.trim()).filter(Boolean);
if (!clientSecret || redirectUris.length === 0) {
  console.error('OIDC_CLIENT_SECRET and OIDC_REDIRECT_URI are required');
  process.exit(2);
}

// The test people. The login typed in the form is the account id.
//   alice: verified, in the allowed domain (tests allow example.com)
//   bob:   email not verified
//   carol: verified, in another domain (example.org)
//   erin:  verified, mixed-case address (Offboard keeps emails lower-case)
//   dave:  no email at all
//   frank: says nothing about verification (no email_verified claim)
//   mallory: verified, in a look-alike domain (evil-example.com)
//   alice2: another person the provider later gave alice's address (same email, other subject)
const ACCOUNTS = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Admin' },
  bob: { email: 'bob@example.com', email_verified: false, name: 'Bob Unverified' },
  carol: { email: 'carol@example.org', email_verified: true, name: 'Carol Elsewhere' },
  erin: { email: 'Erin.Mixed@Example.COM', email_verified: true },
  dave: { name: 'Dave No-Email' },
  frank: { email: 'frank@example.com', name: 'Frank Unsaid' },
  mallory: { email: 'mallory@evil-example.com', email_verified: true, name: 'Mallory' },
  alice2: { email: 'alice@example.com', email_verified: true, name: 'Alice Again' },
};

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  // PKCE is required of every client (oidc-provider only requires it of public ones by default).
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Put the requested claims in the ID token itself (Offboard reads the email from the verified
  // ID token, not from the userinfo endpoint), as Okta, Entra ID and Google do.
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    const person = ACCOUNTS[id];
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...person };
      },
    };
  },
  // Consent given automatically: a company's IdP does not ask its staff to consent to an
  // internal tool.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    grant.addOIDCClaims(['email', 'email_verified', 'name']);
    await grant.save();
    return grant;
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['offboard-test-only-cookie-key'] },
  ttl: { AuthorizationCode: 60, IdToken: 300, AccessToken: 300, Interaction: 600, Session: 600, Grant: 600 },
};

if (process.env.OIDC_KEY_ID) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  configuration.jwks = { keys: [{ ...jwk, kid: process.env.OIDC_KEY_ID, alg: 'RS256', use: 'sig' }] };
}

const server = (await import('node:http')).createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  // A login that is not one of the test accounts is an error page, as at a real IdP.
  server.on('request', provider.callback());
  console.log(`ready ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
