// The reports and a second upload of the same list (issue 23, items 5, 6 and 7), as an admin
// meets them in Chromium: the results spreadsheet has every line of the pasted list in order
// (the header, a blank line, a duplicate, a malformed row and an unknown address too) with the
// person's name, account ID, outcome and reason, under a name with the day and the site; the
// same list previewed again says "already deleted on <day> by <who>" with a link to that run
// instead of "not found", and marks the community creator the site refused "may be refused",
// the count saying "up to". Each screen is checked at 1280 and 390 px with axe-core and for
// program text.
// SCIM side: the project's Stack-shaped fault server (a FAKE; its user 1042 is a community
// creator, which no real SCIM server can refuse); console: the real release binary.
import { test, expect, Page } from '@playwright/test';
import * as fs from 'node:fs';
import { Console, FIRST_OWNER } from './support/servers';
import { FaultServer, TOKEN, confirmRun, connect, connected, open, runState } from './support/flow';
import { checkPage } from './support/program-text';

let server: Console;
let fault: FaultServer;

test.beforeEach(async () => {
  server = await Console.start();
  fault = await FaultServer.start(['--users', '50']);
});

test.afterEach(async () => {
  await server?.stop();
  fault?.stop();
});

/** The pasted list: line 1 the header, 3 blank, 5 a duplicate of 2, 6 malformed, 7 unknown,
 * 8 the community creator (user 1042). */
const LIST = [
  'Email',
  'user1@example.com',
  '',
  'user2@example.com',
  'USER1@example.com',
  'not an address',
  'nobody@example.com',
  'user42@example.com',
];

/** A CSV whose every cell is quoted (as Offboard writes them), read back cell by cell. */
function readCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else if (c !== '\r') cell += c;
  }
  if (cell || row.length) rows.push([...row, cell]);
  return rows;
}

async function previewPasted(page: Page): Promise<void> {
  await open(page, server.baseURL, '/choose');
  await page.getByRole('textbox', { name: 'or paste a list' }).fill(LIST.join('\n'));
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/);
}

test('the results spreadsheet has every line, and the same list again cites that run', async ({ page }) => {
  test.setTimeout(180_000);
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();

  await previewPasted(page);
  await expect(page.getByRole('button', { name: /^3\s*will be deleted/ })).toBeVisible();
  const jobId = await confirmRun(page, 'Delete 3 users');
  await expect(runState(page)).toContainText('Finished', { timeout: 60_000 });

  // Item 5: one spreadsheet, every line of the list in order.
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'All results (CSV)' }).click();
  const saved = await download;
  const site = new URL(fault.base);
  const day = new Date().toISOString().slice(0, 10);
  expect(saved.suggestedFilename()).toBe(`offboard-${day}-${site.hostname}-${site.port}-results.csv`);
  const rows = readCsv(fs.readFileSync((await saved.path())!, 'utf8'));
  expect(rows[0]).toEqual(['Line', 'Input', 'Name', 'Account ID', 'Email', 'Outcome', 'Reason']);
  const lines = rows.slice(1);
  expect(lines.map((r) => r[0])).toEqual(LIST.map((_, i) => String(i + 1)));
  LIST.forEach((text, i) => {
    if (i > 0 && text) expect(lines[i][1], `line ${i + 1}`).toBe(text);
  });
  const outcome = (line: number) => [lines[line - 1][5], lines[line - 1][6]];
  expect(outcome(1)).toEqual(['skipped', 'the header row: the names of the columns']);
  expect(lines[1].slice(2, 6)).toEqual(['User 1', '1001', 'user1@example.com', 'deleted']);
  expect(outcome(3)).toEqual(['skipped', 'a blank line']);
  expect(outcome(4)[0]).toBe('deleted');
  expect(outcome(5)).toEqual(['duplicate', 'the same account as line 2: see that line for what became of it']);
  expect(outcome(6)[0]).toBe('not deleted');
  expect(outcome(6)[1]).toMatch(/^invalid row: /);
  expect(outcome(7)[0]).toBe('not deleted');
  expect(outcome(7)[1]).toMatch(/^not found: /);
  expect(lines[7].slice(2, 6)).toEqual(['User 42', '1042', 'user42@example.com', 'not deleted']);
  expect(outcome(8)[1]).toMatch(/^community creator: /);
  // The technical figures are in the JSON results only.
  expect(rows.flat().join(' ')).not.toMatch(/attempts|elapsed/);
  await checkPage(page, '90-run-finished-reports');

  // Items 6 and 7: the same list again.
  await previewPasted(page);
  // Lines 2, 4 and 5 (user 1 twice, user 2).
  const alreadyDeleted = page.getByRole('button', { name: /^3\s*already deleted/ });
  await expect(alreadyDeleted).toBeVisible();
  await expect(page.getByRole('button', { name: /^up to 1\s*will be deleted/ })).toBeVisible();
  await expect(page.getByText('Up to 1 will be deleted: 1 may be refused by Stack')).toBeVisible();
  const table = page.getByRole('table');
  // As the console writes it: "7 Dec 2026", in UTC.
  const now = new Date();
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const dayInWords = `${now.getUTCDate()} ${months[now.getUTCMonth()]} ${now.getUTCFullYear()}`;
  const user1 = table.getByRole('row').filter({ hasText: 'user1@example.com' }).first();
  await expect(user1).toContainText('already deleted');
  await expect(user1).toContainText(`already deleted on ${dayInWords} by ${FIRST_OWNER.name}`);
  await expect(user1).not.toContainText('not found');
  const link = user1.getByRole('link', { name: `The run of ${dayInWords} by ${FIRST_OWNER.name}` });
  await expect(link).toHaveAttribute('href', `/run?id=${jobId}`);
  const creator = table.getByRole('row').filter({ hasText: 'user42@example.com' });
  await expect(creator).toContainText('may be refused');
  await expect(creator).toContainText('only Stack support can delete it');
  await expect(creator).not.toContainText('will be deleted');
  // The unknown address stays "not found".
  await expect(table.getByRole('row').filter({ hasText: 'nobody@example.com' })).toContainText('not found');
  await checkPage(page, '91-preview-again-cites-the-run');
  // The filter shows the already-deleted rows alone.
  await alreadyDeleted.click();
  await expect(table.getByRole('row').filter({ hasText: 'already deleted on' })).toHaveCount(3);
  // The link leads to that run.
  await table.getByRole('link', { name: `The run of ${dayInWords} by ${FIRST_OWNER.name}` }).first().click();
  await page.waitForURL(new RegExp(`/run\\?id=${jobId}`));
  await expect(runState(page)).toContainText('Finished');
});
