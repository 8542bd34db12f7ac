// A worker module for test/unit/worker-module.test.ts: it imports another TypeScript
// module (so the thread must have a loader) and answers with its workerData.
import { parentPort, workerData } from "node:worker_threads";
import { siblingModule } from "../../src/worker-module.js";

parentPort!.postMessage({ workerData: workerData as unknown, sibling: siblingModule(import.meta.url, "x").pathname.endsWith("/helpers/x.ts") });
