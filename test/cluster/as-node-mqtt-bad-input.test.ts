// test/mqtt/bad-input.test.ts again, against a node of a cluster (PostgreSQL, Redis, InfluxDB):
// every case of it holds there too (test/helpers/broker.ts, SB_TEST_CLUSTER).
process.env.SB_TEST_CLUSTER = "1";
await import("../mqtt/bad-input.test.js");
