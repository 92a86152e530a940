// Apply a Pod and a Deployment to podbus with nothing but the `nats` npm
// package and JSON: any client can talk to the workload-controller's API
// (podbus.api.apply, request-reply, JSON in and out).
//
//   npm install && node apply.mjs [nats-url]
//
// Prints `<Kind>/<name> created|configured` per object; exits 1 on an error
// reply (the reply names every invalid field with its path).
import { connect, JSONCodec } from "nats";

const POD = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "hello-js", labels: { app: "hello-js" } },
  spec: { containers: [{ name: "app", image: "busybox", command: ["sleep", "3600"] }] },
};

const DEPLOYMENT = {
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "web-js" },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: "web-js" } },
    template: {
      metadata: { labels: { app: "web-js" } },
      spec: { containers: [{ name: "web", image: "nginx:1.27" }] },
    },
  },
};

const url = process.argv[2] || process.env.NATS_URL || "nats://127.0.0.1:4222";
const nc = await connect({ servers: url });
const jc = JSONCodec();
let code = 0;
try {
  for (const object of [POD, DEPLOYMENT]) {
    const msg = await nc.request("podbus.api.apply", jc.encode({ object }), { timeout: 5000 });
    const reply = jc.decode(msg.data);
    if (reply.error) {
      console.error(`error: ${reply.error}`);
      for (const d of reply.details || []) console.error(`  ${d.field}: ${d.message}`);
      code = 1;
      break;
    }
    const verb = reply.created ? "created" : "configured";
    console.log(`${reply.object.kind}/${reply.object.metadata.name} ${verb}`);
  }
} finally {
  await nc.close();
}
process.exit(code);
