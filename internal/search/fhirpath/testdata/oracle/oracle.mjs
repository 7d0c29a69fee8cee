// Computes the expected results of the differential test in ../../oracle_test.go
// with the reference JavaScript implementation, fhirpath 5.2.2 (R4 model).
// Run once after regenerating cases.json, and commit expected.json:
//
//   npm ci && node oracle.mjs
//
// The Go test reads only the committed JSON; it never needs node.
import fs from 'node:fs';
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4/index.js';

const { resources, cases } = JSON.parse(fs.readFileSync('cases.json', 'utf8'));
const out = cases.map(({ r, expr }) => {
  // resolve() is asynchronous in fhirpath.js and fetches over HTTP; there is
  // nothing to compare against.
  if (/\bresolve\(\)/.test(expr)) return { skip: 'resolve() needs I/O in fhirpath.js' };
  try {
    const values = fhirpath.evaluate(resources[r], expr, null, r4, { resolveInternalTypes: true });
    return { values };
  } catch (err) {
    return { error: String(err.message).split('\n')[0].slice(0, 200) };
  }
});
fs.writeFileSync('expected.json', JSON.stringify({ generator: 'fhirpath@5.2.2 (r4 model)', results: out }) + '\n');
console.log(`wrote expected.json: ${out.length} results`);
