// Issue 23 item 9: two identical "Bob Ito · bob.ito235@example.com" accounts are no longer a
// dead end. On the Preview, each of the ambiguous row's accounts has "Delete this account";
// choosing one makes the row "will be deleted" for that account, says who chose it and when,
// and the counts and the phrase count it; "Undo choice" puts the row back. The run then
// deletes exactly the chosen account on a REAL SCIM server (PyPI `scim2-server`) and the other
// stays. Each screen is checked at 1280 and 390 px with axe-core and for program text.
import { test, expect } from '@playwright/test';
import { Console, FIRST_OWNER, sessionCookie } from './support/servers';
import { browserOf, invitation } from './support/people';
import { Scim2Server } from './support/scim2';
import { bodyRows, confirmRun, connect, connected, open, phraseOf, runState } from './support/flow';
import { checkPage } from './support/program-text';

const TOKEN = 'e2e-choice-token-2b3c4d5e6f';
const BOB = 'bob.ito235@example.com';

let server: Console;
let scim: Scim2Server;

test.beforeEach(async () => {
  scim = await Scim2Server.start(TOKEN);
  server = await Console.start();
});

test.afterEach(async () => {
  await server?.stop();
  scim?.stop();
});

test('one of two identical accounts is chosen, undone, chosen again, and only it is deleted', async ({ page, browser }) => {
  test.setTimeout(120_000);
  // Two Bob Itos with the same name and email, told apart by their user names and status.
  const [, bob, oldBob] = await scim.seed([
    { userName: 'ann', displayName: 'Ann Lee', emails: [{ value: 'ann@corp.test', primary: true }], active: true },
    { userName: 'bob.ito', displayName: 'Bob Ito', emails: [{ value: BOB, primary: true }], active: true },
    { userName: 'bob.ito.old', displayName: 'Bob Ito', emails: [{ value: BOB, primary: true }], active: false },
  ]);
  await connect(page, server.baseURL, { base: scim.site }, TOKEN);
  await expect(connected(page)).toContainText('lists 3 users');

  await open(page, server.baseURL, '/choose');
  await page.getByLabel(/File with emails or account IDs/).setInputFiles({
    name: 'leavers.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from(`Email\nann@corp.test\n${BOB}\n`),
  });
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/);
  await expect(page.getByRole('button', { name: /1\s*ambiguous/ })).toBeVisible();
  expect(await phraseOf(page)).toBe('DELETE 1 USER');

  const rows = bodyRows(page.getByRole('table', { name: 'Preview rows' }));
  const bobRow = rows.filter({ hasText: BOB });
  const accounts = bobRow.getByRole('list', { name: 'Possible accounts, none touched' });
  await expect(accounts.getByRole('listitem').filter({ hasText: bob })).toContainText('active · user name bob.ito');
  await expect(accounts.getByRole('listitem').filter({ hasText: oldBob })).toContainText(
    'deactivated · user name bob.ito.old',
  );
  await expect(bobRow.getByRole('button', { name: /^Delete this account/ })).toHaveCount(2);
  await checkPage(page, '86-preview-ambiguous-with-choice');

  // A viewer reads the same accounts but is offered no choice (only an operator may change a preview).
  const code = new URL(await invitation(server, server.cookie, 'viewer', 'vera@corp.test')).searchParams.get('code')!;
  const joined = await server.post('/join', {
    code,
    email: 'vera@corp.test',
    name: 'Vera',
    password: 'a long enough password',
    again: 'a long enough password',
  });
  const vera = await (await browserOf(browser, server, sessionCookie(joined)!)).newPage();
  await vera.goto(page.url());
  await expect(vera.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  const veraBob = bodyRows(vera.getByRole('table', { name: 'Preview rows' })).filter({ hasText: BOB });
  await expect(veraBob.getByRole('listitem').filter({ hasText: oldBob })).toContainText('deactivated · user name bob.ito.old');
  await expect(veraBob.getByRole('button', { name: /^Delete this account/ })).toHaveCount(0);
  await vera.context().close();

  // Choose the old account, then think better of it.
  await bobRow.getByRole('button', { name: `Delete this account: ${oldBob}` }).click();
  await expect(page.getByRole('button', { name: /2\s*will be deleted/ })).toBeVisible();
  await expect(bobRow).toContainText(`Chosen by ${FIRST_OWNER.name} on `);
  await bobRow.getByRole('button', { name: 'Undo choice for line 3' }).click();
  await expect(page.getByRole('button', { name: /1\s*ambiguous/ })).toBeVisible();
  await expect(bobRow.getByRole('button', { name: /^Delete this account/ })).toHaveCount(2);

  // Choose the active one: the row, the counts and the phrase say so.
  await bobRow.getByRole('button', { name: `Delete this account: ${bob}` }).click();
  await expect(page.getByRole('button', { name: /2\s*will be deleted/ })).toBeVisible();
  await expect(page.getByRole('button', { name: /0\s*ambiguous/ })).toBeVisible();
  await expect(bobRow).toContainText('will be deleted');
  await expect(bobRow).toContainText(bob);
  await expect(bobRow).toContainText(`The other account with this email, ${oldBob}, is not touched.`);
  // The time is the page's own: a <time> the browser writes in the reader's zone.
  await expect(bobRow.getByTestId('chosen-note')).toContainText(`Chosen by ${FIRST_OWNER.name} on `);
  await expect(bobRow.getByTestId('chosen-note').locator('time')).toHaveAttribute('datetime', /Z$/);
  expect(await phraseOf(page)).toBe('DELETE 2 USERS');
  await checkPage(page, '87-preview-account-chosen');

  await confirmRun(page, 'Delete 2 users');
  await expect(runState(page)).toContainText('Finished', { timeout: 60_000 });
  expect([...(await scim.ids())]).toEqual([oldBob]);

  // The trail says who chose which account for which line.
  await open(page, server.baseURL, '/audit');
  await expect(page.getByText(`Chose account ${bob} for line 3 (${BOB})`)).toBeVisible();
  await expect(page.getByText(`Undid the choice of account ${oldBob} for line 3 (${BOB})`)).toBeVisible();
  await checkPage(page, '88-audit-account-chosen');
});
