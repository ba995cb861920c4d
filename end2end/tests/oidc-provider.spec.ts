// The test OpenID provider itself, in Chromium: its sign-in page works headless and sends the
// browser back to the registered redirect URI with a code (or an error when cancelled). The
// console's own sign-in pages are tested elsewhere; this keeps the helper the lead's browser
// tests rely on honest. The callback is answered by Playwright (page.route), not by a console.
import { test, expect } from '@playwright/test';
import { createHash, randomBytes } from 'node:crypto';
import { OidcProvider, signInAtProvider, cancelAtProvider, people } from './support/oidc';

const redirectUri = 'http://127.0.0.1:9/sign-in/sso/callback';
let idp: OidcProvider;

test.beforeAll(async () => {
  idp = await OidcProvider.start({ redirectUri });
});
test.afterAll(async () => {
  await idp?.stop();
});

function authorizeUrl(): { url: string; state: string } {
  const state = randomBytes(16).toString('base64url');
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: idp.clientId,
    redirect_uri: redirectUri,
    scope: 'openid email profile',
    state,
    nonce: randomBytes(16).toString('base64url'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  return { url: `${idp.issuer}/auth?${query}`, state };
}

test('the provider signs a person in and sends the browser back with a code', async ({ page }) => {
  await page.route(`${redirectUri}**`, (route) => route.fulfill({ body: 'callback reached' }));
  const { url, state } = authorizeUrl();
  await page.goto(url);
  await signInAtProvider(page, people.verified);
  await expect(page.getByText('callback reached')).toBeVisible();
  const back = new URL(page.url());
  expect(back.origin + back.pathname).toBe(redirectUri);
  expect(back.searchParams.get('state')).toBe(state);
  expect(back.searchParams.get('code')).toBeTruthy();
});

test('cancelling at the provider sends access_denied back', async ({ page }) => {
  await page.route(`${redirectUri}**`, (route) => route.fulfill({ body: 'callback reached' }));
  const { url } = authorizeUrl();
  await page.goto(url);
  await cancelAtProvider(page);
  await expect(page.getByText('callback reached')).toBeVisible();
  expect(new URL(page.url()).searchParams.get('error')).toBe('access_denied');
});
