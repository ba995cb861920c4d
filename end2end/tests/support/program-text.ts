// The check every screen of issue 23 gets: no visible line that looks like program text (a
// `view!` attribute cut short by a `>` once printed its own source on a button), then the
// layout and axe-core checks at 1280 and 390 px (support/flow.ts checkScreen).
import { expect, Page } from '@playwright/test';
import { checkScreen } from './flow';

/** Patterns of program text that no sentence for a person contains. */
export const PROGRAM_TEXT: RegExp[] = [
  /move\s*\|/,
  /\|\s*_\s*\|/,
  /\.update\(/,
  /\.get\(\)/,
  /\.set\(/,
  /=>/,
  /::/,
  /\bon\s*:\s*(click|input|change|submit)\b/,
  /\bprop\s*:\s*\w+/,
  /\bSome\(|\bNone\b\s*[,)]/,
  // A `{ … }` pair holding code: a statement end or an assignment inside braces.
  /\{[^{}]*[;=][^{}]*\}/,
];

/** Fails if any visible text of the page looks like program text, naming the line. */
export async function expectNoProgramText(page: Page, where: string): Promise<void> {
  const text = await page.locator('body').innerText();
  const found = text
    .split('\n')
    .filter((line) => PROGRAM_TEXT.some((p) => p.test(line)))
    .map((line) => line.trim());
  expect(found, `program text shown on ${where}`).toEqual([]);
}

/** Both checks of a screen: layout and axe at 1280 and 390 px, and no program text. */
export async function checkPage(page: Page, name: string): Promise<void> {
  await expectNoProgramText(page, name);
  await checkScreen(page, name);
}
