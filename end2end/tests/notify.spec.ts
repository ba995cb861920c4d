// "Waiting for you" (issue 20), as two people meet it in Chromium: Carol (operator) asks for
// approval of a delete run; Olive (owner) sees the request on Overview and a count beside
// her team's name, follows "Review and approve", types the phrase, and the request leaves both
// lists. Pages read clearly at 1280 and 390 px and pass axe-core. SCIM side: the project's
// Stack-shaped fault server (a FAKE Stack site, a test double); console: the real release binary.
import { test, expect, BrowserContext, Page } from '@playwright/test';
import { Console } from './support/servers';
import { FaultServer, TOKEN, askForApproval, checkScreen, connect, open, phraseOf, runState } from './support/flow';
import { browserOf, joined } from './support/people';

const CAROL = { name: 'Carol', email: 'user3@example.com', password: 'another long password' };

/** The Overview card, found by its heading. */
const waiting = (page: Page) => page.getByRole('region', { name: 'Waiting for you' });
/** The header's count, found by the words a screen reader says. */
const count = (page: Page) =>
  page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: /waiting for you$/ });

test('Carol asks, Olive sees it waiting for her and approves from its link', async ({ page, browser }) => {
  test.setTimeout(150_000);
  const fault = await FaultServer.start(['--users', '30']);
  const server = await Console.start();
  let carolBrowser: BrowserContext | undefined;
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    const carolCookie = await joined(server, 'operator', CAROL);

    // Nothing waits for Olive yet.
    await open(page, server.baseURL, '/');
    await expect(waiting(page)).toContainText('Nothing waits for you right now.');
    await expect(count(page)).toHaveCount(0);

    // Carol makes a preview and asks for approval.
    carolBrowser = await browserOf(browser, server, carolCookie);
    const carol = await carolBrowser.newPage();
    const previewPath = await askForApproval(carol, server.baseURL, 'Email\nuser20@example.com\nuser21@example.com\n');

    // Carol's own Overview: her request waits, and there is nothing for her to approve.
    await open(carol, server.baseURL, '/');
    await expect(waiting(carol)).toContainText('Your requests');
    await expect(waiting(carol)).toContainText('Awaiting approval: Delete 2 users');
    await expect(waiting(carol).getByRole('link', { name: 'Review and approve' })).toHaveCount(0);

    // Olive: the count beside her team's name, and the request with who asked and the counts.
    await open(page, server.baseURL, '/');
    await expect(count(page)).toHaveAccessibleName('1 thing waiting for you');
    await expect(count(page)).toHaveText('1');
    // On a phone the header folds into "Menu": the count is on the button itself.
    await page.setViewportSize({ width: 390, height: 800 });
    const menu = page.getByRole('banner').locator('summary', { hasText: 'Menu' });
    await expect(menu).toBeVisible();
    await expect(menu).toContainText('1');
    await expect(menu).toHaveAccessibleName(/^Menu\s*, 1 thing waiting for you$/);
    await page.setViewportSize({ width: 1280, height: 800 });
    await expect(waiting(page)).toContainText(`${CAROL.name} <${CAROL.email}> asks to delete 2 users`);
    await checkScreen(page, '60-waiting-for-you');
    // The count is on the pages the server renders whole too.
    await open(page, server.baseURL, '/history');
    await expect(count(page)).toHaveAccessibleName('1 thing waiting for you');
    await count(page).click();
    await expect(page).toHaveURL(/\/#waiting-for-you$/);

    // She follows its link, sees who asked, and approves by typing the phrase.
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await waiting(page).getByRole('link', { name: 'Review and approve' }).click();
    await expect(page).toHaveURL(new RegExp(previewPath.replace(/[?]/g, '\\?') + '$'));
    await expect(page.getByRole('region', { name: 'Confirm' }).getByRole('status')).toContainText(`${CAROL.name} <${CAROL.email}> asked for this run`);
    await page.getByLabel('Type the phrase to confirm').fill(await phraseOf(page));
    await page.getByRole('button', { name: 'Delete 2 users' }).click();
    await page.waitForURL(/\/run\?id=/);
    await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });

    // Handled: it has left both lists, and the count is gone.
    await open(page, server.baseURL, '/');
    await expect(waiting(page)).toContainText('Nothing waits for you right now.');
    await expect(count(page)).toHaveCount(0);
    await open(carol, server.baseURL, '/');
    await expect(waiting(carol)).toContainText('Nothing waits for you right now.');
    await expect(count(carol)).toHaveCount(0);
  } finally {
    await carolBrowser?.close();
    await server.stop();
    fault.stop();
  }
});
