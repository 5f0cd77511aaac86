// One process of `npm run test:unit` (test/run.js): imports its share of the
// unit test files; node:test runs what they declare and sets the exit code.
for (const file of process.argv.slice(2)) await import(new URL(file, `file://${process.cwd()}/`).href);
