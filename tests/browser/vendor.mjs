// Copies the pinned browser builds (package.json's exact versions, installed by `npm ci`) into
// web/vendor/, so the demo page loads them from its own origin: no CDN at run time, no build step
// to serve the page. To upgrade: change the version in package.json,
// `npm install --no-audit --no-fund`, `npm run vendor`, and commit web/vendor/ with the lock file.
// `node vendor.mjs --check` (scripts/api-client.sh) and verify.spec.mjs fail when a vendored copy
// is not byte-identical to the installed package.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

// Each package: which of its files go where in web/vendor/<name>/, and what its README says.
export const PACKAGES = {
  'libphonenumber-js': {
    // The "max" bundle carries libphonenumber's full metadata, so the page validates numbers by
    // the same rules as the backend (libphonenumber's): with the smaller "min" metadata, numbers
    // such as +44 7700 900123 would look valid on the page and then be refused by the API.
    files: {
      'bundle/libphonenumber-max.js': 'libphonenumber-max.js',
      LICENSE: 'LICENSE',
      'LICENSE.Apache': 'LICENSE.Apache',
    },
    about: `The demo page
loads \`libphonenumber-max.js\` (a UMD bundle that defines the global \`libphonenumber\`) to check
phone numbers as the user types, with the same full metadata the backend's libphonenumber uses.

Licences: the library is MIT (\`LICENSE\`); its metadata comes from Google's libphonenumber,
Apache License 2.0 (\`LICENSE.Apache\`).`,
    sourceMap: 'bundle',
  },
  'openapi-fetch': {
    // Its ES module build imports nothing, so the page imports it as it is. The `.js` name is
    // one every static host serves as JavaScript (a module script of another type is refused);
    // its types sit beside it under the name tsc looks for, for scripts/api-client.sh.
    files: {
      'dist/index.mjs': 'index.js',
      'dist/index.d.mts': 'index.d.ts',
      LICENSE: 'LICENSE',
    },
    about: `\`web/api.js\`
imports \`index.js\` (an ES module, default export \`createClient\`) and types it by
\`web/api/schema.d.ts\`, which openapi-typescript generates from \`openapi.yaml\`.
\`index.d.ts\` (the package's \`dist/index.d.mts\`) is only for the type check of
\`scripts/api-client.sh\`; its types import \`openapi-typescript-helpers\`, which that check
resolves from \`tests/browser/node_modules\`.

Licence: MIT (\`LICENSE\`).`,
    sourceMap: 'module',
  },
};

export function vendoredDir(name) {
  return join(here, '..', '..', 'web', 'vendor', name);
}

export function installedDir(name) {
  return join(here, 'node_modules', name);
}

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function installedVersion(name) {
  return JSON.parse(readFileSync(join(installedDir(name), 'package.json'), 'utf8')).version;
}

function readme(name, version, rows) {
  const { about, sourceMap } = PACKAGES[name];
  return `# ${name} ${version} (vendored)

The npm package [${name}](https://www.npmjs.com/package/${name}) at version
**${version}**, copied unchanged from the npm registry's tarball by \`tests/browser/vendor.mjs\`
(\`npm run vendor\` in \`tests/browser/\`, whose \`package.json\` pins the version). ${about}

| file | from the package | sha256 |
|---|---|---|
${rows.join('\n')}

The ${sourceMap}'s last line names a source map that is not vendored; browsers fetch it only when
developer tools are open.
`;
}

// The README's table: each vendored file, where it comes from, and its digest (by `digest`).
function rows(name, digest) {
  return Object.entries(PACKAGES[name].files).map(
    ([from, to]) => `| \`${to}\` | \`${from}\` | \`${digest(from, to)}\` |`,
  );
}

function vendor(name) {
  const version = installedVersion(name);
  const outDir = vendoredDir(name);
  mkdirSync(outDir, { recursive: true });
  for (const [from, to] of Object.entries(PACKAGES[name].files)) {
    copyFileSync(join(installedDir(name), from), join(outDir, to));
  }
  const digest = (from, to) => sha256(join(outDir, to));
  writeFileSync(join(outDir, 'README.md'), readme(name, version, rows(name, digest)));
  console.log(`vendored ${name} ${version} into web/vendor/${name}`);
}

/** What differs between web/vendor/<name> and the installed package: [] when nothing does. */
export function differences(name) {
  const found = [];
  for (const [from, to] of Object.entries(PACKAGES[name].files)) {
    const vendored = join(vendoredDir(name), to);
    if (!existsSync(vendored) || sha256(vendored) !== sha256(join(installedDir(name), from))) {
      found.push(`web/vendor/${name}/${to} is not the package's ${from}`);
    }
  }
  const notes = join(vendoredDir(name), 'README.md');
  if (found.length === 0) {
    const digest = (from) => sha256(join(installedDir(name), from));
    const expected = readme(name, installedVersion(name), rows(name, digest));
    if (!existsSync(notes) || readFileSync(notes, 'utf8') !== expected) {
      found.push(`web/vendor/${name}/README.md does not describe ${name} ${installedVersion(name)}`);
    }
  }
  return found;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv[2] === '--check') {
    const found = Object.keys(PACKAGES).flatMap(differences);
    for (const line of found) console.error(`vendor: ${line}`);
    if (found.length) {
      console.error('vendor: run `npm run vendor` in tests/browser and commit web/vendor/');
      process.exit(1);
    }
  } else {
    for (const name of Object.keys(PACKAGES)) vendor(name);
  }
}
