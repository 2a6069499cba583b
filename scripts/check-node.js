// Fails fast, with a clear message, when the tests are started on a Node older than mcpgate supports.
// `npm ci` installs Node 24 into node_modules/.bin, which npm scripts put first on PATH.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `mcpgate needs Node >= 22.18 (found ${process.version}). Run "npm ci" first: it installs Node 24 into node_modules/.bin.`,
  );
  process.exit(1);
}
