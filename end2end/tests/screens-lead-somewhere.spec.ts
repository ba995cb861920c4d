// Every screen tells the truth and leads somewhere (issue 23), second part, as people meet it
// in Chromium: after a decline the Preview page (the requester's and the approver's), Overview
// and History say the same thing and offer "Preview again"; a new console's sign-in page says
// where the setup link is and the first owner lands on "Connect your site"; a viewer is not
// offered what their role may not do; on a phone the header folds into a "Menu" button. Every
// page visited is checked at 1280 and 390 px with axe-core and for program text.
// SCIM side: the project's Stack-shaped fault server (a test double); console: the real
// release binary.
import { test, expect, BrowserContext, Page } from '@playwright/test';
import { Console, FIRST_OWNER, sessionCookie } from './support/servers';
import { FaultServer, TOKEN, connect, open } from './support/flow';
import { checkPage } from './support/program-text';
import { browserOf, invitation } from './support/people';

const OPERATOR = { name: 'Opal Operator', email: 'opal@example.com', password: 'another long password' };
const VIEWER = { name: 'Vera Viewer', email: 'vera@example.com', password: 'a third long password' };

/** Makes `who` a member with `role` through an invitation link; their session cookie. */
async function member(server: Console, role: string, who: typeof OPERATOR): Promise<string> {
  const link = await invitation(server, server.cookie, role, who.email);
  const joined = await server.post('/join', {
    code: new URL(link).searchParams.get('code')!,
    ...who,
    again: who.password,
  });
  const cookie = sessionCookie(joined);
  expect(cookie, `${who.email} could not join`).toBeTruthy();
  return cookie!;
}

/** The card that tells a request's state on the Preview page. */
function approvalCard(page: Page) {
  return page.getByRole('region', { name: /Awaiting approval|Declined|Request expired|Approved/ });
}

test('after a decline every page says so and offers Preview again', async ({ page, browser }) => {
  test.setTimeout(180_000);
  const fault = await FaultServer.start(['--users', '30']);
  const server = await Console.start();
  let opalBrowser: BrowserContext | undefined;
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    const opalCookie = await member(server, 'operator', OPERATOR);

    // Opal previews two users and asks for approval (two operators: the team needs one).
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
    const phrase = (await opal.getByTestId('phrase').textContent())!.trim();
    await opal.getByLabel('Type the phrase to confirm').fill(phrase);
    await opal.getByRole('button', { name: 'Ask a second operator to approve' }).click();
    await expect(approvalCard(opal).getByRole('heading', { name: 'Awaiting approval' })).toBeVisible();
    const previewPath = new URL(opal.url()).pathname + new URL(opal.url()).search;
    const oldId = new URL(opal.url()).searchParams.get('id')!;

    // The owner opens it and declines with a reason: the card turns into the declined one at
    // once, without the phrase box or the run button.
    await open(page, server.baseURL, previewPath);
    await expect(page.getByRole('button', { name: 'Delete 2 users' })).toBeVisible();
    await page.getByLabel('Reason').fill('Wrong list');
    await page.getByRole('button', { name: 'Decline', exact: true }).click();
    const declined = `${FIRST_OWNER.name} <${FIRST_OWNER.email}> declined this run: Wrong list. Nothing was run.`;
    const card = approvalCard(page);
    await expect(card.getByRole('heading', { name: 'Declined', level: 2 })).toBeVisible();
    await expect(card.getByRole('status')).toHaveText(declined);
    // Hidden in place (the card replaced it), gone after a reload.
    await expect(page.getByLabel('Type the phrase to confirm')).toBeHidden();
    await expect(page.getByRole('button', { name: 'Delete 2 users' })).toBeHidden();
    await expect(page.getByText('Awaiting approval')).toBeHidden();
    await expect(card.getByRole('button', { name: 'Preview again' })).toBeVisible();
    await checkPage(page, '70-approver-after-decline');
    // The same after a reload.
    await page.reload();
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await expect(approvalCard(page).getByRole('heading', { name: 'Declined', level: 2 })).toBeVisible();
    await expect(page.getByText('Awaiting approval')).toHaveCount(0);
    await expect(page.getByLabel('Type the phrase to confirm')).toHaveCount(0);

    // The requester's Preview page says the same, with no phrase box, Delete or Withdraw.
    await opal.reload();
    await expect(opal.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await expect(approvalCard(opal).getByRole('heading', { name: 'Declined', level: 2 })).toBeVisible();
    await expect(approvalCard(opal).getByRole('status')).toHaveText(declined);
    await expect(opal.getByLabel('Type the phrase to confirm')).toHaveCount(0);
    await expect(opal.getByRole('button', { name: /^Delete \d|Withdraw/ })).toHaveCount(0);
    await expect(opal.getByText('Awaiting approval')).toHaveCount(0);
    await checkPage(opal, '71-requester-after-decline');

    // Overview and History list the request in the same words, with Preview again.
    const again = new RegExp(`^Preview again: Delete 2 users, asked by ${OPERATOR.name}`);
    for (const where of ['/', '/history']) {
      await open(page, server.baseURL, where);
      const requests = page.getByRole('region', { name: 'Requests for approval' });
      await expect(requests).toContainText('Declined: Delete 2 users');
      await expect(requests).toContainText(declined);
      await expect(requests).not.toContainText('Awaiting approval');
      await expect(requests.getByRole('button', { name: again })).toBeVisible();
      await checkPage(page, where === '/' ? '72-overview-after-decline' : '73-history-after-decline');
    }

    // Preview again (from History, a page without script): a new preview of the same users.
    await page.getByRole('region', { name: 'Requests for approval' }).getByRole('button', { name: again }).click();
    await page.waitForURL(/\/preview\?id=/);
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    expect(new URL(page.url()).searchParams.get('id')).not.toBe(oldId);
    await expect(page.getByText('From the file leavers.csv')).toBeVisible();
    await expect(page.getByTestId('phrase')).toHaveText('DELETE 2 USERS');
    await expect(page.getByRole('button', { name: 'Ask a second operator to approve' })).toBeVisible();
    await expect(page.getByText(/declined this run/)).toHaveCount(0);
    await checkPage(page, '74-previewed-again');
    // Nothing was deleted on the way.
    expect((await fault.state()).deleted).toEqual([]);
  } finally {
    await opalBrowser?.close();
    await server.stop();
    fault.stop();
  }
});

test('a new console says where the setup link is, then leads its owner to Connect your site', async ({ page }) => {
  test.setTimeout(120_000);
  const server = await Console.start({}, false);
  try {
    await page.goto(`${server.baseURL}/`);
    await expect(page).toHaveURL(/\/sign-in/);
    await expect(page.getByRole('status').filter({ hasText: 'one-time setup link' })).toContainText(
      'The console printed a one-time setup link in its log when it started: ask whoever runs it for that link',
    );
    await checkPage(page, '75-sign-in-before-setup');

    await page.goto(`${server.baseURL}/setup?code=${server.setupCode()!}`);
    await page.getByLabel('Your name').fill(FIRST_OWNER.name);
    await page.getByLabel('Your work email').fill(FIRST_OWNER.email);
    await page.getByLabel('Choose a password').fill(FIRST_OWNER.password);
    await page.getByLabel('The same password again').fill(FIRST_OWNER.password);
    await page.getByRole('button', { name: 'Create my account' }).click();
    await expect(page).toHaveURL(/\/connect$/);
    await expect(page.getByRole('heading', { name: 'Connect your site', level: 1 })).toBeVisible();
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await checkPage(page, '76-connect-after-setup');

    // Once someone has an account, the sign-in page no longer talks about the setup link.
    const other = await page.context().browser()!.newContext();
    const visitor = await other.newPage();
    await visitor.goto(`${server.baseURL}/sign-in`);
    await expect(visitor.getByRole('heading', { name: 'Sign in to Offboard' })).toBeVisible();
    await expect(visitor.getByText('one-time setup link')).toHaveCount(0);
    await other.close();
  } finally {
    await server.stop();
  }
});

test('a viewer is led to what their role may do, never to choosing users', async ({ browser }) => {
  test.setTimeout(120_000);
  const server = await Console.start();
  let veraBrowser: BrowserContext | undefined;
  try {
    const cookie = await member(server, 'viewer', VIEWER);
    veraBrowser = await browserOf(browser, server, cookie);
    const vera = await veraBrowser.newPage();
    await open(vera, server.baseURL, '/');
    await expect(vera.getByText('You are a viewer in this team')).toBeVisible();
    await expect(vera.getByText('Choose users to remove')).toHaveCount(0);
    const next = vera.getByRole('link', { name: 'See the runs in History' });
    await expect(next).toBeVisible();
    await checkPage(vera, '77-overview-viewer');
    await next.click();
    await expect(vera.getByRole('heading', { name: 'History', level: 1 })).toBeVisible();
  } finally {
    await veraBrowser?.close();
    await server.stop();
  }
});

test('on a phone the header is one line and its links sit behind a Menu button', async ({ page }) => {
  test.setTimeout(120_000);
  const server = await Console.start();
  try {
    // A hydrated page and a page without script behave alike.
    for (const where of ['/', '/history']) {
      await open(page, server.baseURL, where);
      await page.setViewportSize({ width: 390, height: 800 });
      const header = page.getByRole('banner');
      const summary = header.locator('summary', { hasText: 'Menu' });
      await expect(summary).toBeVisible();
      expect((await header.boundingBox())!.height).toBeLessThanOrEqual(80);
      const steps = page.getByRole('navigation', { name: 'Steps' });
      await expect(steps).toBeHidden();
      await checkPage(page, where === '/' ? '78-phone-menu-closed' : '79-phone-menu-closed-history');

      // By keyboard: Tab reaches the button, Enter opens it, every link is then reachable.
      await page.setViewportSize({ width: 390, height: 800 });
      await page.keyboard.press('Tab'); // the skip link
      await page.keyboard.press('Tab'); // the brand
      await page.keyboard.press('Tab');
      await expect(header.locator('summary')).toBeFocused();
      await page.keyboard.press('Enter');
      await expect(steps).toBeVisible();
      for (const name of ['Connect', 'Choose', 'Preview', 'Run', 'History']) {
        await expect(steps.getByRole('link', { name: new RegExp(name) })).toBeVisible();
      }
      const account = page.getByRole('navigation', { name: 'Account' });
      for (const name of ['Default team · owner', 'Audit trail', FIRST_OWNER.name]) {
        await expect(account.getByRole('link', { name })).toBeVisible();
      }
      await checkPage(page, where === '/' ? '80-phone-menu-open' : '81-phone-menu-open-history');

      // The menu leads: a link in it opens its page.
      await page.setViewportSize({ width: 390, height: 800 });
      await account.getByRole('link', { name: 'Audit trail' }).click();
      await expect(page).toHaveURL(/\/audit$/);

      // At a laptop's width there is no Menu button: the links are in the header.
      await open(page, server.baseURL, where);
      await page.setViewportSize({ width: 1280, height: 800 });
      await expect(page.getByRole('banner').locator('summary', { hasText: 'Menu' })).toBeHidden();
      await expect(page.getByRole('navigation', { name: 'Steps' }).getByRole('link', { name: /Choose/ })).toBeVisible();
      expect((await page.getByRole('banner').boundingBox())!.height).toBeLessThanOrEqual(80);
    }
  } finally {
    await server.stop();
  }
});

test('the Connect page keeps only a token the site accepts, and is read-only for an operator', async ({ page, browser }) => {
  test.setTimeout(150_000);
  const fault = await FaultServer.start(['--users', '10']);
  const server = await Console.start();
  let opalBrowser: BrowserContext | undefined;
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    await expect(page.getByTestId('diagnosis')).toHaveAttribute('role', 'status');
    const kept = `Token saved, ending …${TOKEN.slice(-4)}`;
    await expect(page.getByTestId('token-state')).toContainText(kept);

    // A token the site refuses: said under the field it is about, and not kept.
    await page.getByLabel('SCIM token').fill('wrong-token-zzzz');
    await page.getByRole('button', { name: 'Save and check' }).click();
    const field = page.getByLabel('SCIM token');
    await expect(field).toHaveAttribute('aria-invalid', 'true');
    await expect(field).toHaveAccessibleDescription(/token/i);
    const refusal = page.locator('#token-error');
    await expect(refusal).toHaveAttribute('role', 'alert');
    await expect(page.getByText('so it was not kept')).toBeVisible();
    await expect(page.getByTestId('token-state')).toContainText(kept);
    await checkPage(page, '82-connect-token-refused');
    await page.reload();
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await expect(page.getByTestId('token-state')).toContainText(kept);
    await page.getByRole('button', { name: 'Check the saved connection' }).click();
    await expect(page.getByTestId('diagnosis')).toHaveAttribute('role', 'status');

    // An operator sees the connection, read-only, and why.
    const opalCookie = await member(server, 'operator', OPERATOR);
    opalBrowser = await browserOf(browser, server, opalCookie);
    const opal = await opalBrowser.newPage();
    await open(opal, server.baseURL, '/connect');
    await expect(opal.getByText('You are an operator in this team: only a team owner may change the site')).toBeVisible();
    await expect(opal.getByRole('textbox')).toHaveCount(0);
    await expect(opal.getByRole('button', { name: 'Save and check' })).toHaveCount(0);
    await expect(opal.getByRole('button', { name: 'Remove token' })).toHaveCount(0);
    await expect(opal.getByText(kept)).toBeVisible();
    await expect(opal.getByText(fault.base, { exact: true })).toBeVisible();
    await checkPage(opal, '83-connect-read-only');
  } finally {
    await opalBrowser?.close();
    await server.stop();
    fault.stop();
  }
});

test('a preview that fails keeps the pasted list and names the file', async ({ page }) => {
  test.setTimeout(120_000);
  const fault = await FaultServer.start(['--users', '10']);
  const server = await Console.start();
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    await expect(page.getByTestId('diagnosis')).toHaveAttribute('role', 'status');
    // The site stops answering: every preview fails.
    fault.stop();
    await expect.poll(async () => fetch(`${fault.base}/v2/Users`).then(() => 'up', () => 'down')).toBe('down');

    await open(page, server.baseURL, '/choose');
    const list = 'user1@example.com\nuser2@example.com';
    await page.getByRole('textbox', { name: 'or paste a list' }).fill(list);
    await page.getByRole('button', { name: 'Preview these users' }).click();
    await page.waitForURL(/\/choose\?error=preview_failed/);
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await expect(page.getByRole('alert')).toContainText('The pasted list was not previewed');
    await expect(page.getByRole('alert')).toContainText('The list is in the box below again.');
    await expect(page.getByRole('textbox', { name: 'or paste a list' })).toHaveValue(list);
    await checkPage(page, '84-choose-pasted-failed');

    await page.getByRole('textbox', { name: 'or paste a list' }).fill('');
    await page.getByLabel(/File with emails or account IDs/).setInputFiles({
      name: 'leavers.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from('Email\nuser3@example.com\n'),
    });
    await page.getByRole('button', { name: 'Preview these users' }).click();
    await page.waitForURL(/\/choose\?error=preview_failed/);
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await expect(page.getByRole('alert')).toContainText('leavers.csv was not previewed');
    await expect(page.getByRole('alert')).toContainText('Choose the file again below');
    await expect(page.getByLabel(/File with emails or account IDs/)).toBeEnabled();
    // The box is empty again: the pasted list was shown once, not kept for ever.
    await expect(page.getByRole('textbox', { name: 'or paste a list' })).toHaveValue('');
    await checkPage(page, '85-choose-file-failed');
  } finally {
    await server.stop();
    fault.stop();
  }
});
