// Every screen and state as a non-technical admin meets it, at 1280 px and 390 px: saved as
// screenshots (end2end/screenshots/), checked for sideways scrolling, and audited with axe-core
// (no serious or critical violation, colour contrast AA). Along the way: the preview table's
// layout, the same words on counts and rows, every candidate of an ambiguous email, the
// deactivated list's own choices, the admin's place kept when an option changes, visible
// keyboard focus, the bar of outcomes, and a run stopped because deletion is not enabled.
// SCIM side: the project's Stack-shaped fault server (a test double; only it can switch SCIM
// deletion off and on); console: the real release binary.
import { test, expect, Page } from '@playwright/test';
import { Console } from './support/servers';
import { FaultServer, TOKEN, checkScreen, confirmRun, connect, open, connected, pickedCount, runState } from './support/flow';

let server: Console;
let fault: FaultServer;

test.beforeAll(async () => {
  // 100 users; every 7th is deactivated: user7 (a Moderator), user42 (a community creator), and
  // user98, whose email user99 also has (so a file row with it is ambiguous).
  fault = await FaultServer.start(['--users', '100', '--deactivated-every', '7']);
  server = await Console.start();
});

test.afterAll(async () => {
  await server?.stop();
  fault?.stop();
});

async function uploadList(page: Page, lines: string[]) {
  await open(page, server.baseURL, '/choose');
  await page.getByLabel(/File with emails or account IDs/).setInputFiles({
    name: 'leavers.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from(['Email', ...lines].join('\n') + '\n'),
  });
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
}

test('every screen reads clearly at 1280 and 390 px and passes axe-core', async ({ page }) => {
  test.setTimeout(240_000);
  await open(page, server.baseURL, '/');
  await expect(page.getByText('No site is connected yet.')).toBeVisible();
  await expect(page.getByRole('region', { name: 'Offboard' }).getByRole('link', { name: 'Connect your site', exact: true })).toBeVisible();
  await expect(page.getByText(/migrations applied/)).toHaveCount(0);
  await checkScreen(page, '01-overview-empty');

  await open(page, server.baseURL, '/connect');
  await checkScreen(page, '02-connect-empty');
  await connect(page, server.baseURL, fault, 'wrong-token-zzzz');
  await expect(page.getByRole('alert')).toBeVisible();
  await checkScreen(page, '03-connect-error');
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();
  await checkScreen(page, '04-connect-ok');

  await open(page, server.baseURL, '/');
  await expect(page.getByRole('status').filter({ hasText: 'connected and answering' })).toBeVisible();
  await expect(page.getByRole('region', { name: 'Offboard' }).getByRole('link', { name: 'Choose users to remove', exact: true })).toBeVisible();
  await checkScreen(page, '05-overview-connected');

  await open(page, server.baseURL, '/choose');
  await checkScreen(page, '06-choose');
  await page.getByRole('button', { name: 'Show deactivated users' }).click();
  await expect(pickedCount(page)).toContainText('0 selected of 14 deactivated users');
  await checkScreen(page, '07-choose-deactivated');
  // Nothing chosen: the plain form comes back with an error.
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/choose\?error=/);
  await expect(page.getByRole('alert').first()).toBeVisible();
  await checkScreen(page, '08-choose-error');

  const rows = [
    'user1@example.com',
    'user5@example.com',
    'user98@example.com',
    'user7@example.com',
    'nobody@example.com',
    'firstname.lastname.department@subsidiary.example.com',
    'not an email',
    'user1@example.com',
    ...Array.from({ length: 15 }, (_, i) => `user${i + 20}@example.com`),
  ];
  await uploadList(page, rows);

  // The count and the rows say the same thing, in the chosen action's words.
  await expect(page.getByRole('button', { name: /17\s*will be deleted/ })).toBeVisible();
  const table = page.getByRole('table', { name: 'Preview rows' });
  await expect(table.getByRole('row', { name: /user20@example\.com/ })).toContainText('will be deleted');
  await expect(table).not.toContainText('will be processed');

  // An ordinary email sits on one line, and an ordinary row takes at most two.
  const emailCell = table.getByRole('cell', { name: 'user20@example.com', exact: true });
  const lines = await emailCell.evaluate((cell) => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    return new Set(Array.from(range.getClientRects()).map((r) => Math.round(r.top))).size;
  });
  expect(lines).toBe(1);
  const tallest = await table.evaluate((t) => {
    const lineHeight = parseFloat(getComputedStyle(t.querySelector('tbody td')!).lineHeight);
    const heights = Array.from(t.querySelectorAll('tbody tr'))
      .filter((tr) => !tr.textContent!.includes('not touched'))
      .map((tr) => {
        const td = tr.querySelector('td')!;
        const pad = parseFloat(getComputedStyle(td).paddingTop) + parseFloat(getComputedStyle(td).paddingBottom);
        return (tr.getBoundingClientRect().height - pad) / lineHeight;
      });
    return Math.max(...heights);
  });
  expect(tallest).toBeLessThanOrEqual(2.2);

  // An ambiguous email shows every account it could mean, none of them touched.
  const ambiguous = table.getByRole('row', { name: /user98@example\.com/ }).first();
  const candidates = ambiguous.getByRole('list', { name: 'Possible accounts, none touched' });
  await expect(candidates.getByRole('listitem')).toHaveCount(2);
  await expect(candidates).toContainText('1098');
  await expect(candidates).toContainText('1099');
  await expect(candidates.getByRole('listitem').first()).toContainText('not touched');

  await expect(page.getByText('Deleting up to 17 users cannot be undone')).toBeVisible();
  await checkScreen(page, '09-preview');

  // A phone shows each row as a card: no sideways scrolling (checked above), each value named.
  await page.setViewportSize({ width: 390, height: 800 });
  const card = table.getByRole('row', { name: /user20@example\.com/ });
  const cardWidth = (await card.boundingBox())!.width;
  expect(cardWidth).toBeLessThanOrEqual(390);
  await page.setViewportSize({ width: 1280, height: 800 });

  // A wrong phrase says why, live.
  await page.getByLabel('Type the phrase to confirm').fill('DELETE 11 USERS');
  await expect(page.getByLabel('Type the phrase to confirm')).toHaveAccessibleDescription('The count is 17, not 11. Type DELETE 17 USERS.');
  await checkScreen(page, '10-preview-wrong-phrase');
  await page.getByLabel('Type the phrase to confirm').fill('');

  // Keyboard focus is always visible.
  await page.locator('body').click({ position: { x: 1, y: 1 } });
  for (let i = 0; i < 25; i++) {
    await page.keyboard.press('Tab');
    const outline = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      if (!el || el === document.body) return 'body';
      const s = getComputedStyle(el);
      return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 ? 'visible' : `${el.tagName} ${el.textContent}`;
    });
    expect(['visible', 'body']).toContain(outline);
  }

  const jobId = await confirmRun(page, 'Delete 17 users');
  await expect(runState(page)).toContainText('Finished', { timeout: 60_000 });
  await expect(page.getByRole('img', { name: /^Outcome of 17 users: 17 deleted, 0 failed/ })).toBeVisible();
  await checkScreen(page, '11-run-finished');

  await open(page, server.baseURL, '/history');
  await expect(page.getByRole('img', { name: /Outcome of 17 users: 17 deleted/ })).toBeVisible();
  await checkScreen(page, '12-history');

  await open(page, server.baseURL, '/');
  await expect(page.getByRole('link', { name: /Delete · 17 users · Finished/ })).toHaveAttribute('href', `/run?id=${jobId}`);
  await checkScreen(page, '13-overview-with-runs');

  await page.goto(`${server.baseURL}/no-such-page`);
  await checkScreen(page, '14-not-found');
  await open(page, server.baseURL, '/preview');
  await checkScreen(page, '15-preview-empty');
});

test('the deactivated list offers the choices itself, and the preview keeps the admin\'s place', async ({ page }) => {
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();
  await open(page, server.baseURL, '/choose');
  await page.getByRole('button', { name: 'Show deactivated users' }).click();
  const list = page.getByRole('region', { name: 'Deactivated users' });
  await list.getByRole('checkbox', { name: 'Select User 7', exact: true }).check();
  await list.getByRole('checkbox', { name: 'Select User 14', exact: true }).check();
  await list.getByLabel(/Demote moderators and admins/).check();
  await page.getByRole('button', { name: 'Preview selected' }).click();
  await page.waitForURL(/\/preview\?id=/);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  // The moderator is not skipped: the list asked for demotion.
  await expect(page.getByRole('button', { name: /2\s*will be deleted/ })).toBeVisible();

  // Changing an option rebuilds the preview without jumping back to the top.
  const demote = page.getByRole('checkbox', { name: /Demote moderators and admins/ });
  await demote.scrollIntoViewIfNeeded();
  const before = await page.evaluate(() => window.scrollY);
  expect(before).toBeGreaterThan(0);
  const firstId = new URL(page.url()).searchParams.get('id');
  await demote.uncheck();
  await expect.poll(() => new URL(page.url()).searchParams.get('id')).not.toBe(firstId);
  await expect(page.getByRole('button', { name: /1\s*moderator\/admin/ })).toBeVisible();
  expect(await page.evaluate(() => window.scrollY)).toBeGreaterThan(before / 2);
  await expect(page.getByRole('checkbox', { name: /Demote moderators and admins/ })).toBeFocused();
  await expect(page.getByRole('checkbox', { name: /Demote moderators and admins/ })).not.toBeChecked();
});

test('a run stopped because deletion is not enabled says what to do, with a button that does it', async ({ page }) => {
  const off = await FaultServer.start(['--users', '12', '--deletion-disabled']);
  try {
    await connect(page, server.baseURL, off, TOKEN);
    await expect(connected(page)).toBeVisible();
    await uploadList(page, ['user2@example.com', 'user3@example.com', 'user4@example.com']);
    await confirmRun(page, 'Delete 3 users');
    await expect(runState(page)).toContainText('Stopped', { timeout: 30_000 });
    await expect(page.getByRole('heading', { name: 'What to do now' })).toBeVisible();
    await expect(page.getByRole('img', { name: /Outcome of 3 users: 0 deleted, [1-3] failed/ })).toBeVisible();
    await checkScreen(page, '16-run-stopped-deletion-not-enabled');
    expect((await off.state()).deleted).toEqual([]);

    // Stack support switches deletion on; one click makes a new preview of the same users.
    const res = await fetch(`${off.base}/_control/settings`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ deletion_disabled: false }),
    });
    expect(res.status).toBe(200);
    await page.getByRole('button', { name: 'Preview the 3 users again' }).click();
    await page.waitForURL(/\/preview\?id=/);
    await expect(page.getByRole('button', { name: /3\s*will be deleted/ })).toBeVisible();
    await confirmRun(page, 'Delete 3 users');
    await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });
    expect([...(await off.state()).deleted].sort()).toEqual(['1002', '1003', '1004']);
  } finally {
    off.stop();
  }
});
