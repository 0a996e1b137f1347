// Signs sample GitHub webhook bodies with GitHub's own library (@octokit/webhooks-methods).
// Reads a JSON array of {secret, body} on stdin; writes a JSON array of header maps.
import { sign } from "@octokit/webhooks-methods";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const { secret, body } of JSON.parse(input)) {
  out.push({ "x-hub-signature-256": await sign(secret, body) });
}
process.stdout.write(JSON.stringify(out));
