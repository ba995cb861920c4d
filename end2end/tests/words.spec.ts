// Words and times (issue 23, items 14, 15 and the rest of 10), as a person meets them in
// Chromium whose time zone is Asia/Kolkata (UTC+5:30, no summer time, so the expected clock is
// computed by hand, not by the formatter under test):
// - every time on the app's screens and on the server-rendered ones is in that zone, names
//   it, and no raw or zone-less time is shown; the audit filter says plainly what a day is;
//   the audit download keeps UTC and says so in its header;
// - one name per thing: the deactivated list offers no "Deactivate", its preview has no
//   "Line" column and sorts account IDs as numbers, the preview spreadsheet and the audit trail
//   say "will be deleted" like the page, the counts beside the bar use the bar's word;
// - Connect asks what to do with the saved token when the site address changes.
// Every page visited is checked at 1280 and 390 px with axe-core and for program text.
// SCIM side: the project's Stack-shaped fault server (a fake site, a test double); console:
// the real release binary.
import { test, expect, Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Console } from './support/servers';
import { FaultServer, TOKEN, bodyRows, confirmRun, connect, connected, open, runState } from './support/flow';
import { checkPage } from './support/program-text';

test.use({ timezoneId: 'Asia/Kolkata' });

const pad = (n: number) => String(n).padStart(2, '0');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "7 Dec 2026, 17:47": the day and clock an instant shows in Kolkata, by arithmetic. */
function inKolkata(iso: string): { day: string; clock: string } {
  const t = new Date(Date.parse(iso) + 330 * 60_000);
  return {
    day: `${t.getUTCDate()} ${MONTHS[t.getUTCMonth()]}`,
    clock: `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}`,
  };
}

/** Every time in the page's main part is in Kolkata's time, naming the zone; nothing on the
 * page is a raw or zone-less time. Returns how many times were checked. */
async function expectLocalTimes(page: Page, where: string): Promise<number> {
  const times = page.locator('main time[datetime]');
  const n = await times.count();
  for (let i = 0; i < n; i++) {
    const at = (await times.nth(i).getAttribute('datetime'))!;
    const { day, clock } = inKolkata(at);
    // Chromium names the zone IST (or GMT+5:30 with other locale data); never UTC.
    await expect(times.nth(i), `${where}: ${at}`).toHaveText(
      new RegExp(`^${day}(t)? \\d{4}, ${clock} (IST|GMT\\+5:30)$`),
    );
  }
  const text = await page.locator('body').innerText();
  expect(text, `${where} shows a raw or zone-less time`).not.toMatch(/\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/);
  return n;
}

test('times are in the reader\'s zone, named, on every kind of screen; downloads keep UTC', async ({ page }) => {
  test.setTimeout(180_000);
  const fault = await FaultServer.start(['--users', '30']);
  const server = await Console.start();
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    await expect(connected(page)).toBeVisible();
    await open(page, server.baseURL, '/choose');
    await page.getByLabel(/File with emails or account IDs/).setInputFiles({
      name: 'leavers.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from('Email\nuser3@example.com\nuser4@example.com\n'),
    });
    await page.getByRole('button', { name: 'Preview these users' }).click();
    await page.waitForURL(/\/preview\?id=/);
    const jobId = await confirmRun(page, 'Delete 2 users');
    await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });

    // The Run page (the app): "created" with the time in Kolkata.
    await expect(page.getByText(/· created \d/)).toBeVisible();
    expect(await expectLocalTimes(page, 'run')).toBeGreaterThan(0);
    await checkPage(page, '90-run-times');

    // Overview (the app): the recent run.
    await open(page, server.baseURL, '/');
    expect(await expectLocalTimes(page, 'overview')).toBeGreaterThan(0);
    await checkPage(page, '91-overview-times');

    // History and the Audit trail are rendered by the server: their one small script puts
    // the times in the reader's zone.
    await open(page, server.baseURL, '/history');
    const opened = page.getByRole('link', { name: /^Open the run of \d/ });
    await expect(opened).toHaveAttribute('href', `/run?id=${jobId}`);
    await expect(opened).toHaveAccessibleName(/ (IST|GMT\+5:30)$/);
    expect(await expectLocalTimes(page, 'history')).toBeGreaterThan(0);
    await checkPage(page, '92-history-times');

    await open(page, server.baseURL, '/audit');
    const shown = await expectLocalTimes(page, 'audit');
    expect(shown).toBeGreaterThanOrEqual(4);
    // The day filter says plainly what a day is, and that the list is in the reader's zone.
    await expect(page.getByLabel('From day')).toHaveAccessibleDescription(/midnight to midnight in UTC/);
    await expect(page.getByText('(day, UTC)')).toHaveCount(0);
    await expect(page.getByText('when (in your time zone)', { exact: false })).toBeVisible();
    // The command that checks the trail is folded away, explained.
    await expect(page.getByText('offboard audit verify')).toBeHidden();
    await page.getByText('How to prove that no entry was changed').click();
    await expect(page.getByText('offboard audit verify')).toBeVisible();
    await checkPage(page, '93-audit-times');

    // The download keeps UTC and names it in its header.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download these entries (CSV)' }).click(),
    ]);
    const lines = fs.readFileSync((await download.path())!, 'utf8').trim().split(/\r?\n/);
    expect(lines[0]).toBe('"seq","at (UTC)","actor","action","target","details"');
    expect(lines[1]).toMatch(/^"\d+","\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z"/);
    // The newest entry's time on the page is that UTC time, in Kolkata.
    const newest = /^"\d+","([^"]+)"/.exec(lines[1])![1];
    const { clock } = inKolkata(newest);
    await expect(page.locator('main time[datetime]').first()).toContainText(clock);
  } finally {
    await server.stop();
    fault.stop();
  }
});

test('one name per thing: the deactivated list, its preview, the spreadsheet, the run and the trail', async ({ page }) => {
  test.setTimeout(180_000);
  // Four deactivated users whose IDs sort differently as text and as numbers; 10 created a
  // community, which the site refuses to delete.
  const seed = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'words-')), 'users.json');
  const user = (id: string, active: boolean, extra: object = {}) => ({
    id,
    userName: `user${id}`,
    displayName: `User ${id}`,
    active,
    emails: [{ value: `user${id}@example.com`, primary: true }],
    ...extra,
  });
  fs.writeFileSync(
    seed,
    JSON.stringify([
      user('500', true, { emails: [{ value: 'operator@example.com', primary: true }] }),
      user('100', false),
      user('9', false),
      user('10', false, { communityCreator: true }),
      user('2', false),
    ]),
  );
  const fault = await FaultServer.start(['--seed-file', seed]);
  const server = await Console.start();
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    await expect(connected(page)).toBeVisible();
    await checkPage(page, '94-connect-words');

    await open(page, server.baseURL, '/choose');
    await page.getByRole('button', { name: 'Show deactivated users' }).click();
    await page.getByRole('button', { name: 'Select all' }).click();
    // Already deactivated: only Delete is left, and the page says why (the upload card above
    // still offers both).
    const list = page.getByRole('region', { name: 'Deactivated users' });
    await expect(list.getByLabel('Deactivate (reversible)')).toHaveCount(0);
    await expect(page.getByLabel('Deactivate (reversible)')).toHaveCount(1);
    await expect(list.getByRole('group', { name: /These users will be deleted/ })).toContainText(
      'They are already deactivated, so deactivating is not offered.',
    );
    await checkPage(page, '95-choose-deactivated');
    await page.getByRole('button', { name: 'Preview selected' }).click();
    await page.waitForURL(/\/preview\?id=/);

    // No empty "Line" column; account IDs as numbers: 2, 9, 10, 100.
    const table = page.getByRole('table', { name: 'Preview rows' });
    await expect(table.getByRole('columnheader')).toHaveText(['Input', 'Outcome', 'Account', 'Reason']);
    const rows = bodyRows(table);
    await expect(rows).toHaveCount(4);
    const inputs = await rows.locator('td[data-label="Input"]').allInnerTexts();
    expect(inputs.map((s) => s.trim())).toEqual(['2', '9', '10', '100']);
    await expect(rows.first()).toContainText('will be deleted');
    await expect(page.getByLabel('Deactivate (reversible)')).toHaveCount(0);
    await checkPage(page, '96-preview-deactivated');

    // The spreadsheet: the page's words, no line column.
    const [csv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download the preview (CSV)' }).click(),
    ]);
    // Every cell is quoted; none of these holds a comma or a quote.
    const sheet = fs
      .readFileSync((await csv.path())!, 'utf8')
      .trim()
      .split(/\r?\n/)
      .map((line) => line.replaceAll('"', ''));
    expect(sheet[0]).toBe('input,outcome,account_id,user_name,display_name,emails,active,role,reason');
    expect(sheet.slice(1).map((l) => l.split(',').slice(0, 2).join(','))).toEqual([
      '2,will be deleted',
      '9,will be deleted',
      '10,will be deleted',
      '100,will be deleted',
    ]);
    expect(sheet.join('\n')).not.toContain('will be processed');

    const jobId = await confirmRun(page, 'Delete 4 users');
    await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });
    // The counts beside the bar use the bar's words: "failed", then what exactly.
    const counts = page.getByRole('list', { name: 'Results so far' });
    await expect(counts).toContainText('3 deleted');
    await expect(counts).toContainText('1 failed: community creator');
    await expect(page.getByRole('img', { name: /3 deleted, 1 failed/ })).toBeVisible();
    await checkPage(page, '97-run-words');

    // The trail says what the Preview page said.
    await open(page, server.baseURL, '/audit');
    const entries = page.getByRole('table', { name: 'Audit entries, newest first' });
    await expect(entries).toContainText('Counts: 4 will be deleted');
    await expect(entries).not.toContainText('Selected');
    await expect(entries).toContainText('Counts: 1 failed: community creator, 3 deleted');
    await expect(entries.getByRole('link', { name: jobId }).first()).toBeVisible();
  } finally {
    await server.stop();
    fault.stop();
  }
});

test('changing the site address asks what to do with the saved token', async ({ page }) => {
  test.setTimeout(180_000);
  const first = await FaultServer.start(['--users', '3']);
  const moved = await FaultServer.start(['--users', '3']);
  const server = await Console.start();
  try {
    await connect(page, server.baseURL, first, TOKEN);
    await expect(connected(page)).toBeVisible();
    await open(page, server.baseURL, '/connect');
    const question = page.getByRole('group', { name: `The saved token was made for ${first.base}. What should happen to it?` });
    await expect(question).toHaveCount(0);

    // A new address, no new token: the page asks, and saving waits for an answer.
    await page.getByLabel('Site address').fill(moved.base);
    await page.getByLabel('SCIM base URL').fill(`${moved.base}/v2`);
    await expect(question).toBeVisible();
    await checkPage(page, '98-connect-token-question');
    await page.getByRole('button', { name: 'Save and check' }).click();
    const unanswered = await question
      .getByRole('radio')
      .first()
      .evaluate((r) => (r as HTMLInputElement).validity.valueMissing);
    expect(unanswered).toBe(true);
    await expect(page.getByTestId('token-state')).toContainText('Token saved');
    expect((await moved.state()).requests.LIST ?? 0).toBe(0);

    // Typing a token makes the question moot; emptying the box asks again.
    await page.getByLabel('SCIM token').fill('x');
    await expect(question).toHaveCount(0);
    await page.getByLabel('SCIM token').fill('');
    await expect(question).toBeVisible();

    // Keep it: the same token now works at the new address.
    await question.getByLabel('Keep it for the new address (the same site moved)').check();
    await page.getByRole('button', { name: 'Save and check' }).click();
    await expect(connected(page)).toBeVisible();
    await expect(page.getByTestId('token-state')).toContainText('Token saved');
    expect((await moved.state()).requests.LIST).toBeGreaterThan(0);

    // Back to the first address, removing the token this time: nothing is sent there.
    const before = (await first.state()).requests.LIST ?? 0;
    await open(page, server.baseURL, '/connect');
    await page.getByLabel('Site address').fill(first.base);
    await page.getByLabel('SCIM base URL').fill(`${first.base}/v2`);
    const again = page.getByRole('group', { name: `The saved token was made for ${moved.base}. What should happen to it?` });
    await again.getByLabel("Remove it: I will type the new site's token above").check();
    await page.getByRole('button', { name: 'Save and check' }).click();
    await expect(page.getByTestId('token-state')).toContainText('No token saved');
    expect((await first.state()).requests.LIST ?? 0).toBe(before);

    // The trail records the choice.
    await open(page, server.baseURL, '/audit');
    await expect(page.getByRole('table', { name: 'Audit entries, newest first' })).toContainText(
      'Token kept for the new address: yes',
    );
  } finally {
    await server.stop();
    first.stop();
    moved.stop();
  }
});
