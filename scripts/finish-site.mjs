// Last step of `make site`: names the bundle by content and compresses the site once, at build time.
//
// Usage: node scripts/finish-site.mjs SITE_ROOT
//
// 1. `pkg/offboard.{js,wasm,css}` become `pkg/offboard.<hash>.{js,wasm,css}` (first 16 hex digits
//    of the SHA-256 of the content), and `hash.txt` in the site root lists the hashes in the
//    format Leptos reads (`js: <hash>`, one line per kind). A browser may then keep these files
//    forever: a new build has new names. The server sends them with `Cache-Control: immutable`.
// 2. Every text or WASM file of the site gets a `.br` (brotli, quality 11) and a `.gz` (gzip -9)
//    copy next to it; the server picks one by the request's Accept-Encoding (content
//    negotiation) and sends the raw file to clients that accept neither.
// Node's own zlib does both, so the build needs nothing beyond the Node it already has.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

const siteRoot = process.argv[2];
if (!siteRoot || !fs.existsSync(path.join(siteRoot, 'pkg'))) {
  console.error('usage: node scripts/finish-site.mjs SITE_ROOT (with SITE_ROOT/pkg built)');
  process.exit(2);
}
const pkg = path.join(siteRoot, 'pkg');

const hashes = [];
for (const kind of ['js', 'wasm', 'css']) {
  const plain = path.join(pkg, `offboard.${kind}`);
  const bytes = fs.readFileSync(plain);
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  fs.renameSync(plain, path.join(pkg, `offboard.${hash}.${kind}`));
  hashes.push(`${kind}: ${hash}`);
}
fs.writeFileSync(path.join(siteRoot, 'hash.txt'), hashes.join('\n') + '\n');

const compressible = new Set(['.js', '.wasm', '.css', '.svg', '.html', '.json', '.txt']);
function compressTree(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      compressTree(file);
      continue;
    }
    if (!compressible.has(path.extname(entry.name)) || entry.name === 'hash.txt') continue;
    const bytes = fs.readFileSync(file);
    const br = zlib.brotliCompressSync(bytes, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
      },
    });
    const gz = zlib.gzipSync(bytes, { level: 9 });
    fs.writeFileSync(`${file}.br`, br);
    fs.writeFileSync(`${file}.gz`, gz);
    if (entry.name.startsWith('offboard.')) {
      console.log(`    ${entry.name}: ${bytes.length} raw, ${gz.length} gzip, ${br.length} brotli`);
    }
  }
}
compressTree(siteRoot);
