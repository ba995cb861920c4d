// Every screen tells the truth and leads somewhere (issue 23), as a non-technical admin meets
// it in Chromium: the deactivated list pages past page 1 and keeps "N selected · Preview
// selected" in sight; a cancelled run says who cancelled and when, and counts the users it did
// not reach apart; the Team page asks before removing someone (naming them and what they lose)
// and every account and team form says what it did or what was wrong. Each page is checked at
// 1280 and 390 px with axe-core, and for visible text that looks like program text (a `view!`
// attribute cut short by a `>` once printed its own source on a button).
// SCIM side: the project's Stack-shaped fault server (a test double); console: the real
// release binary.
import { test, expect } from '@playwright/test';
import { Console, FIRST_OWNER } from './support/servers';
import { FaultServer, TOKEN, confirmRun, connect, open, connected, liveRows, pickedCount, runState } from './support/flow';
import { PROGRAM_TEXT, checkPage, expectNoProgramText } from './support/program-text';

let server: Console;

test.beforeEach(async () => {
  server = await Console.start();
});

test.afterEach(async () => {
  await server?.stop();
});

test('the program-text check catches the text a broken view printed', async ({ page }) => {
  // The check itself must be able to fail: the words once shown on the Next page button.
  await page.setContent(
    '<main><button disabled>= pages() on : click = move | _ | page.update(|p| *p = (*p + 1).min(pages())) >Next page</button></main>',
  );
  const text = await page.locator('body').innerText();
  expect(PROGRAM_TEXT.some((p) => p.test(text))).toBe(true);
  await page.setContent('<main><p>Priya cancelled the run at 12:17 UTC. Page 2 of 5 · 3 selected</p></main>');
  await expectNoProgramText(page, 'plain words');
});

test('the deactivated list pages through all of its pages, with the selection in sight', async ({ page }) => {
  test.setTimeout(180_000);
  // 2,005 users, every 5th deactivated: 401, five pages of 100.
  const fault = await FaultServer.start(['--users', '2005', '--deactivated-every', '5']);
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    await expect(connected(page)).toBeVisible();
    await open(page, server.baseURL, '/choose');
    await page.getByRole('button', { name: 'Show deactivated users' }).click();
    await expect(pickedCount(page)).toContainText('0 selected of 401 deactivated users');
    const pager = page.getByRole('navigation', { name: 'Pages of deactivated users' });
    const next = pager.getByRole('button', { name: 'Next page', exact: true });
    const previous = pager.getByRole('button', { name: 'Previous page', exact: true });
    const table = page.getByRole('table', { name: 'Deactivated users' });
    await expect(pager).toContainText('Page 1 of 5');
    await expect(previous).toBeDisabled();
    await checkPage(page, '50-choose-deactivated-page-1');

    // Tick one user on page 1, then walk to the last page, each page showing other users.
    await table.getByRole('checkbox', { name: 'Select User 5', exact: true }).check();
    const firstRows: string[] = [];
    for (let p = 1; p <= 5; p++) {
      await expect(pager).toContainText(`Page ${p} of 5`);
      const first = (await table.getByRole('row').nth(1).innerText()).trim();
      expect(firstRows).not.toContain(first);
      firstRows.push(first);
      if (p < 5) {
        await expect(next).toBeEnabled();
        await next.click();
      }
    }
    await expect(next).toBeDisabled();
    await expect(previous).toBeEnabled();
    // The last page holds the 401st user (user 2005).
    await expect(table.getByRole('checkbox', { name: 'Select User 2005', exact: true })).toBeVisible();
    await table.getByRole('checkbox', { name: 'Select User 2005', exact: true }).check();
    await previous.click();
    await expect(pager).toContainText('Page 4 of 5');
    await table.getByRole('checkbox', { name: 'Select User 1505', exact: true }).check();
    await checkPage(page, '51-choose-deactivated-page-4');

    // Scrolled to the top of a long list, the selection and its button stay in sight.
    const bar = page.getByRole('group', { name: 'Selected users' });
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: 800 });
      await table.evaluate((t) => t.scrollIntoView({ block: 'start' }));
      await expect(table.getByRole('row').nth(1)).toBeInViewport();
      await expect(bar).toBeInViewport();
      await expect(bar).toContainText('3 selected');
      await expect(bar.getByRole('button', { name: 'Preview selected' })).toBeInViewport();
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await bar.getByRole('button', { name: 'Preview selected' }).click();
    await page.waitForURL(/\/preview\?id=/);
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await expect(page.getByRole('button', { name: /Delete 3 users/ })).toBeVisible();
    await checkPage(page, '52-preview-of-three-pages');
  } finally {
    fault.stop();
  }
});

test('a cancelled run says who cancelled and when, and counts the users not attempted apart', async ({ page }) => {
  test.setTimeout(180_000);
  // 66 users, every 2nd deactivated: 33. Slow replies so the run can be cancelled midway.
  const fault = await FaultServer.start(['--users', '66', '--deactivated-every', '2', '--latency-ms', '1500']);
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    await expect(connected(page)).toBeVisible();
    await open(page, server.baseURL, '/choose');
    await page.getByRole('button', { name: 'Show deactivated users' }).click();
    await page.getByRole('button', { name: 'Select all' }).click();
    await page.getByRole('button', { name: 'Preview selected' }).click();
    await page.waitForURL(/\/preview\?id=/);
    await confirmRun(page, 'Delete 33 users');
    await expect.poll(async () => (await fault.state()).deleted.length, { timeout: 30_000 }).toBeGreaterThan(2);
    await page.getByRole('button', { name: 'Cancel' }).click();

    const state = runState(page);
    await expect(state).toContainText('Stopped', { timeout: 60_000 });
    const canceller = new RegExp(`${FIRST_OWNER.name} cancelled the run at \\d{2}:\\d{2} UTC`);
    await expect(state).toContainText(canceller);
    await expect(page.getByText(/the admin/)).toHaveCount(0);
    await expect(page.getByText(/could not record its progress/)).toHaveCount(0);

    // "16 of 33 users processed, 17 not attempted": the two numbers add up to the run.
    const progress = (await page.getByText(/ users processed/).innerText()).trim();
    const m = /^(\d+) of 33 users processed, (\d+) not attempted$/.exec(progress);
    expect(m, progress).not.toBeNull();
    const [processed, skipped] = [Number(m![1]), Number(m![2])];
    expect(processed + skipped).toBe(33);
    expect(skipped).toBeGreaterThan(0);
    // The bar shows the same: the users processed, not every row with a result.
    await expect(page.getByRole('progressbar', { name: 'Users processed' })).toHaveAttribute('value', String(processed));
    // Every user the site deleted was processed (a community creator is processed, not deleted).
    expect((await fault.state()).deleted.length).toBeLessThanOrEqual(processed);

    // The rows not reached say who stopped them, in the same words.
    const rows = liveRows(page);
    const notAttempted = rows.getByRole('row').filter({ hasText: 'not attempted' });
    await expect(notAttempted.first()).toBeVisible();
    const messages = await notAttempted.allInnerTexts();
    for (const row of messages) {
      expect(row).toMatch(new RegExp(`Not attempted: ${canceller.source}\\.`));
    }
    await checkPage(page, '53-run-cancelled');

    // History says the same.
    await open(page, server.baseURL, '/history');
    await expect(page.getByText(canceller).first()).toBeVisible();
    await checkPage(page, '54-history-cancelled');
  } finally {
    fault.stop();
  }
});

test('the Team page asks before removing someone and every form says what it did', async ({ page }) => {
  test.setTimeout(180_000);
  await open(page, server.baseURL, '/team');
  // The Team and Account pages are plain forms the server renders whole: no script at all,
  // so everything below is what a browser without script does.
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'static');
  expect(await page.locator('script[src]:not([src="/local-times.js"]), link[rel=modulepreload]').count()).toBe(0);
  await expect(page.getByRole('heading', { name: 'Default team', level: 1 })).toBeVisible();
  await checkPage(page, '55-team');

  // Add a colleague by email: the page says who is now what.
  await page.getByLabel('Email', { exact: true }).fill('ana@example.com');
  await page.getByLabel('Their role').selectOption('viewer');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await expect(page.getByRole('status').filter({ hasText: 'ana@example.com is now Viewer in Default team' })).toBeVisible();
  await expect(page.getByText('Done.', { exact: true })).toHaveCount(0);

  // Remove: first a question naming the person and what they lose; nothing is removed yet.
  await page.getByRole('button', { name: 'Remove ana@example.com', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'Remove ana@example.com from Default team?' })).toBeVisible();
  await expect(page.getByRole('table', { name: 'Members' })).toContainText('ana@example.com');
  const consent = page.getByLabel("Yes, remove ana@example.com: they lose access to Default team's runs and reports.");
  await expect(consent).not.toBeChecked();
  await checkPage(page, '56-team-confirm-removal');
  // Without the tick, the browser holds the form back (and the server refuses it too).
  await page.getByRole('button', { name: 'Remove ana@example.com now' }).click();
  await expect(page.getByRole('table', { name: 'Members' })).toContainText('ana@example.com');
  const unticked = await server.post('/team/members/remove', { email: 'ana@example.com' }, server.cookie);
  expect(unticked.status).toBe(303);
  expect(unticked.headers.get('location')).toContain('/team?remove=ana%40example.com');
  await page.reload();
  await expect(page.getByText('Nobody was removed: tick the box')).toBeVisible();
  await expect(page.getByRole('table', { name: 'Members' })).toContainText('ana@example.com');
  // "Keep" leads back without removing anyone.
  await page.getByRole('link', { name: 'Keep ana@example.com' }).click();
  await expect(page.getByRole('heading', { name: /Remove ana@example.com/ })).toHaveCount(0);
  await page.getByRole('button', { name: 'Remove ana@example.com', exact: true }).click();
  await consent.check();
  await page.getByRole('button', { name: 'Remove ana@example.com now' }).click();
  await expect(
    page.getByRole('status').filter({ hasText: 'ana@example.com was removed from Default team' }),
  ).toBeVisible();
  await expect(page.getByRole('table', { name: 'Members' })).not.toContainText('ana@example.com');
  await checkPage(page, '57-team-removed');

  // Removing yourself says so, and a team is never left without an owner.
  await page.getByRole('button', { name: `Remove yourself (${FIRST_OWNER.email})` }).click();
  await expect(page.getByRole('heading', { name: 'Remove yourself from Default team?' })).toBeVisible();
  await page.getByLabel(/Yes, remove myself/).check();
  await page.getByRole('button', { name: 'Remove myself' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'A team needs at least one owner' })).toBeVisible();
  await expect(page.getByRole('table', { name: 'Members' })).toContainText(FIRST_OWNER.email);

  // Settings: the words say what they are now.
  await page.getByLabel("A delete run needs a second operator's approval").selectOption('always');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await expect(
    page.getByRole('status').filter({
      hasText:
        "Settings saved: a delete run needs a second operator's approval always; deactivations start without a second operator; an undo window lasts 30 days, and its deletion starts by itself.",
    }),
  ).toBeVisible();
  await checkPage(page, '58-team-settings-saved');

  // A phone: every member's buttons fit (checkScreen checked no sideways scrolling).
  await page.setViewportSize({ width: 390, height: 800 });
  for (const button of await page.getByRole('table', { name: 'Members' }).getByRole('button').all()) {
    const box = (await button.boundingBox())!;
    expect(box.x).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width).toBeLessThanOrEqual(390);
  }
  await page.setViewportSize({ width: 1280, height: 800 });

  // The password: a wrong current one is named as such, then the change says it was made.
  await open(page, server.baseURL, '/account');
  expect(await page.locator('script[src]:not([src="/local-times.js"]), link[rel=modulepreload]').count()).toBe(0);
  await page.getByLabel('Current password').fill('not my password at all');
  await page.getByLabel('New password').fill('a brand new long password');
  await page.getByLabel('The same password again').fill('a brand new long password');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert')).toContainText('The current password is not right');
  await expect(page.getByText(/do not match an account/)).toHaveCount(0);
  await checkPage(page, '59-account-wrong-current-password');
  await page.getByLabel('Current password').fill(FIRST_OWNER.password);
  await page.getByLabel('New password').fill('a brand new long password');
  await page.getByLabel('The same password again').fill('a brand new long password');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert')).toContainText('Your password was changed.');
  await checkPage(page, '60-account-password-changed');
});
