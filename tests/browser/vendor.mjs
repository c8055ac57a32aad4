// Copies the pinned libphonenumber-js browser bundle (package.json's exact version, installed by
// `npm ci`) into web/vendor/, so the demo page loads it from its own origin: no CDN at run time,
// no build step to serve the page. To upgrade: change the version in package.json,
// `npm install --no-audit --no-fund`, `npm run vendor`, and commit web/vendor/ with the lock file.
// verify.spec.mjs checks that the vendored copy is byte-identical to the installed package.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, 'node_modules', 'libphonenumber-js');
const outDir = join(here, '..', '..', 'web', 'vendor', 'libphonenumber-js');

// The "max" bundle carries libphonenumber's full metadata, so the page validates numbers by the
// same rules as the backend (libphonenumber's): with the smaller "min" metadata, numbers such as
// +44 7700 900123 would look valid on the page and then be refused by the API.
export const FILES = {
  'bundle/libphonenumber-max.js': 'libphonenumber-max.js',
  LICENSE: 'LICENSE',
  'LICENSE.Apache': 'LICENSE.Apache',
};

export function vendoredDir() {
  return outDir;
}

export function installedDir() {
  return pkgDir;
}

function main() {
  const { version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  mkdirSync(outDir, { recursive: true });
  const lines = [];
  for (const [from, to] of Object.entries(FILES)) {
    copyFileSync(join(pkgDir, from), join(outDir, to));
    const sha256 = createHash('sha256').update(readFileSync(join(outDir, to))).digest('hex');
    lines.push(`| \`${to}\` | \`${from}\` | \`${sha256}\` |`);
  }
  writeFileSync(
    join(outDir, 'README.md'),
    `# libphonenumber-js ${version} (vendored)

The npm package [libphonenumber-js](https://www.npmjs.com/package/libphonenumber-js) at version
**${version}**, copied unchanged from the npm registry's tarball by \`tests/browser/vendor.mjs\`
(\`npm run vendor\` in \`tests/browser/\`, whose \`package.json\` pins the version). The demo page
loads \`libphonenumber-max.js\` (a UMD bundle that defines the global \`libphonenumber\`) to check
phone numbers as the user types, with the same full metadata the backend's libphonenumber uses.

Licences: the library is MIT (\`LICENSE\`); its metadata comes from Google's libphonenumber,
Apache License 2.0 (\`LICENSE.Apache\`).

| file | from the package | sha256 |
|---|---|---|
${lines.join('\n')}

The bundle's last line names a source map that is not vendored; browsers fetch it only when
developer tools are open.
`,
  );
  console.log(`vendored libphonenumber-js ${version} into ${outDir}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main();
}
