// Signing in and sharing the console, as people meet it in Chromium: the first owner sets up
// the console from the link in its log, signs out and in again, invites an operator who joins
// in another browser; and a delete run that waits for a second operator (two browsers, two
// people). Pages read clearly at 1280 and 390 px and pass axe-core. SCIM side: the project's
// Stack-shaped fault server (a test double); console: the real release binary.
import { test, expect, Browser, BrowserContext, Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Console, FIRST_OWNER, freePort, sessionCookie } from './support/servers';
import { FaultServer, TOKEN, checkScreen, connect, open, phraseOf, runState } from './support/flow';
import { OidcProvider, people, signInAtProvider } from './support/oidc';
import { browserOf, invitation } from './support/people';

const OPERATOR = { name: 'Opal Operator', email: 'user2@example.com', password: 'another long password' };

async function typePhrase(page: Page, button: string | RegExp): Promise<void> {
  const phrase = await phraseOf(page);
  await page.getByLabel('Type the phrase to confirm').fill(phrase);
  await page.getByRole('button', { name: button }).click();
}

test('the first owner sets up the console, signs in again and invites an operator', async ({ page, browser }) => {
  test.setTimeout(120_000);
  const server = await Console.start({}, false);
  try {
    // Nobody is signed in: every page leads to the sign-in page, and back after.
    await page.goto(`${server.baseURL}/history`);
    await expect(page).toHaveURL(/\/sign-in\?next=%2Fhistory/);
    await expect(page.getByRole('heading', { name: 'Sign in to Offboard' })).toBeVisible();
    await expect(page.getByRole('navigation', { name: 'Steps' })).toHaveCount(0);
    await checkScreen(page, '30-sign-in');

    // The setup link from the log.
    const code = server.setupCode()!;
    await page.goto(`${server.baseURL}/setup?code=${code}`);
    // The people screens are plain forms the server renders whole: no app, only the few
    // lines that show times in the reader's zone.
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'static');
    expect(await page.locator('script[src]:not([src="/local-times.js"]), link[rel=modulepreload]').count()).toBe(0);
    await page.getByLabel('Your name').fill(FIRST_OWNER.name);
    await page.getByLabel('Your work email').fill(FIRST_OWNER.email);
    await page.getByLabel('Choose a password').fill('too short');
    await page.getByLabel('The same password again').fill('too short');
    await page.getByRole('button', { name: 'Create my account' }).click();
    // The browser checks the length first (minlength); the server checks it again.
    await expect(page).toHaveURL(/\/setup\?code=/);
    await page.getByLabel('Choose a password').fill(FIRST_OWNER.password);
    await page.getByLabel('The same password again').fill(FIRST_OWNER.password);
    await page.getByRole('button', { name: 'Create my account' }).click();
    // A new console's first need is its site: the owner lands on the Connect page (issue 23).
    await expect(page).toHaveURL(/\/connect$/);
    await expect(page.getByRole('heading', { name: 'Connect your site', level: 1 })).toBeVisible();
    await page.goto(`${server.baseURL}/teams`);
    await expect(page.getByRole('heading', { name: 'Teams of this console' })).toBeVisible();
    await expect(page.getByRole('table')).toContainText('Default team');
    await checkScreen(page, '31-teams');
    // The link is spent.
    await page.goto(`${server.baseURL}/setup?code=${code}`);
    await expect(page.getByRole('alert')).toBeVisible();

    // Sign out, a wrong password, then in again, back where the person was going.
    await open(page, server.baseURL, '/account');
    await expect(page.getByText(/^Signed in as /)).toContainText(FIRST_OWNER.email);
    await checkScreen(page, '32-account');
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await expect(page.getByRole('alert')).toHaveText('You are signed out.');
    await page.goto(`${server.baseURL}/audit`);
    await page.getByLabel('Email').fill(FIRST_OWNER.email);
    await page.getByLabel('Password').fill('not my password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('alert')).toContainText('do not match an account');
    await page.getByLabel('Email').fill(FIRST_OWNER.email);
    await page.getByLabel('Password').fill(FIRST_OWNER.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page).toHaveURL(/\/audit$/);
    await expect(page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Default team · owner', exact: true })).toBeVisible();

    // An invitation, made on the Team page and opened in another browser.
    await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: /· owner$/ }).click();
    await page.getByLabel('Their email').fill(OPERATOR.email);
    await page.getByLabel('Invite as').selectOption('operator');
    await page.getByRole('button', { name: 'Make an invitation link' }).click();
    const link = (await page.getByRole('status').getByText(/\/join\?code=/).textContent())!.trim();
    expect(link).toMatch(new RegExp(`^${server.baseURL}/join\\?code=`));
    // Listed for the owners until it is used, with whom it is for.
    await expect(page.getByRole('table', { name: 'Open invitations' })).toContainText(OPERATOR.email);
    await expect(page.getByRole('button', { name: `Revoke the invitation for ${OPERATOR.email}` })).toBeVisible();
    await checkScreen(page, '33-team');
    const other = await browser.newContext();
    const opal = await other.newPage();
    await opal.goto(link);
    await expect(opal.getByText(/ invited to /)).toContainText('invited to Default team as operator');
    await opal.getByLabel('Your name').fill(OPERATOR.name);
    // The invitation names its person: the email is set, not typed.
    await expect(opal.getByLabel('Your work email')).toHaveValue(OPERATOR.email);
    await opal.getByLabel('Choose a password').fill(OPERATOR.password);
    await opal.getByLabel('The same password again').fill(OPERATOR.password);
    await opal.getByRole('button', { name: 'Create my account and join' }).click();
    await expect(opal.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Default team · operator', exact: true })).toBeVisible();
    await other.close();
    // The owner sees them in the team.
    await page.reload();
    await expect(page.getByRole('table', { name: 'Members' })).toContainText(`${OPERATOR.name} (${OPERATOR.email})`);
    await expect(page.getByText('No invitation is open.')).toBeVisible();
  } finally {
    await server.stop();
  }
});

test('a delete run waits until a second operator types the phrase (two people, two browsers)', async ({ page, browser }) => {
  test.setTimeout(150_000);
  const fault = await FaultServer.start(['--users', '30']);
  const server = await Console.start();
  let opalBrowser: BrowserContext | undefined;
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    const link = await invitation(server, server.cookie, 'operator', OPERATOR.email);
    const joined = await server.post('/join', {
      code: new URL(link).searchParams.get('code')!,
      ...OPERATOR,
      again: OPERATOR.password,
    });
    const opalCookie = sessionCookie(joined)!;
    expect(opalCookie).toBeTruthy();

    // Opal makes the preview and asks for approval.
    opalBrowser = await browserOf(browser, server, opalCookie);
    const opal = await opalBrowser.newPage();
    await open(opal, server.baseURL, '/choose');
    await opal.getByLabel(/File with emails or account IDs/).setInputFiles({
      name: 'leavers.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from('Email\nuser20@example.com\nuser21@example.com\n'),
    });
    await opal.getByRole('button', { name: 'Preview these users' }).click();
    await opal.waitForURL(/\/preview\?id=/);
    await expect(opal.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await expect(opal.getByText(/^Your team needs a second operator for this run/)).toBeVisible();
    await typePhrase(opal, 'Ask a second operator to approve');
    await expect(opal.getByRole('region', { name: 'Awaiting approval' }).getByRole('status')).toContainText('Waiting for a second operator');
    const previewUrl = opal.url();
    await opal.reload();
    await expect(opal.getByRole('region', { name: 'Awaiting approval' }).getByRole('status')).toContainText('Waiting for a second operator');
    await checkScreen(opal, '34-awaiting-approval');

    // The owner opens the same preview, sees who asked, and approves by typing the phrase.
    await open(page, server.baseURL, new URL(previewUrl).pathname + new URL(previewUrl).search);
    await expect(page.getByRole('region', { name: 'Confirm' }).getByRole('status')).toContainText(`${OPERATOR.name} <${OPERATOR.email}> asked for this run`);
    await checkScreen(page, '35-approve');
    await typePhrase(page, 'Delete 2 users');
    await page.waitForURL(/\/run\?id=/);
    await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });
    await expect(page.getByText(`started by ${OPERATOR.name} <${OPERATOR.email}> · approved by ${FIRST_OWNER.name} <${FIRST_OWNER.email}>`)).toBeVisible();
  } finally {
    await opalBrowser?.close();
    await server.stop();
    fault.stop();
  }
});

test('a colleague signs in through the company sign-in service once an owner has added them', async ({ browser }) => {
  test.setTimeout(120_000);
  // The console's address is known first: the provider sends browsers back to it.
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const idp = await OidcProvider.start({ redirectUri: `${publicUrl}/sign-in/sso/callback` });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'offboard-e2e-'));
  const server = new Console(port, dataDir, idp.consoleEnv(publicUrl, ['example.com']));
  try {
    await server.launch();
    await server.setUpFirstOwner();
    const added = await server.post('/team/members', { email: 'alice@example.com', role: 'operator' }, server.cookie);
    expect(added.headers.get('location')).toContain('problem=done');

    // Alice: added by email, verified at the provider.
    const aliceBrowser = await browser.newContext();
    const alice = await aliceBrowser.newPage();
    await alice.goto(`${publicUrl}/history`);
    await expect(alice).toHaveURL(/\/sign-in\?next=/);
    await alice.getByRole('link', { name: /^Sign in with / }).click();
    await signInAtProvider(alice, people.verified);
    await expect(alice.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Default team · operator', exact: true })).toBeVisible();
    await expect(alice.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Alice Admin', exact: true })).toBeVisible();
    await aliceBrowser.close();

    // Carol: verified, but her domain is not allowed here. Said on the sign-in page.
    const carolBrowser = await browser.newContext();
    const carol = await carolBrowser.newPage();
    await carol.goto(`${publicUrl}/sign-in`);
    await carol.getByRole('link', { name: /^Sign in with / }).click();
    await signInAtProvider(carol, people.otherDomain);
    await expect(carol.getByRole('alert').filter({ hasText: 'Single sign-on did not work' })).toBeVisible();
    await expect(carol.getByRole('alert').filter({ hasText: 'example.org' })).toBeVisible();
    await checkScreen(carol, '36-sso-refused');
    await carolBrowser.close();
    expect(server.log()).not.toContain(idp.clientSecret);
  } finally {
    await server.stop();
    await idp.stop();
  }
});
