// A device learns nothing about other devices over XMPP, their existence included
// (docs/xmpp.md, Presence and roster; src/xmpp/visibility.ts). Every listing a device
// can ask for leaves the others out, and every question about another device (dev2,
// online, with telemetry) gets the very answer a device that does not exist (ghost)
// gets, byte for byte once the name and the id are blanked. Operators still see
// everything.
import t from "tap";
import { passwordOf, testAccounts } from "../helpers/accounts.js";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { NS_DISCO_INFO, NS_DISCO_ITEMS } from "../../src/xmpp/modules/disco.js";
import { NS_COMMANDS } from "../../src/xmpp/modules/adhoc.js";
import { NS_PUBSUB } from "../../src/xmpp/modules/pubsub.js";
import { online as onlineClient, type RawClient } from "../helpers/raw.js";

const accounts = testAccounts({ op1: "operator", dev1: "thermostat", dev2: "door-sensor" });

let broker: TestBroker;
let dev1: RawClient;
let dev2: RawClient;
let op: RawClient;

const online = (name: string, resource = "fw") => onlineClient(broker.ports.xmpp, name, passwordOf(accounts, name), { resource });

t.before(async () => {
  broker = await startTestBroker({}, accounts);
  [op, dev1, dev2] = await Promise.all(["op1", "dev1", "dev2"].map((name) => online(name)));
  // dev2 has a sample: a leak of its node or read-out would have something to show.
  dev2.send(`<iq type='set' id='pub' to='pubsub.localhost'><pubsub xmlns='${NS_PUBSUB}'><publish node='telemetry/dev2'><item><json xmlns='urn:xmpp:json:0'>{"open":true}</json></item></publish></pubsub></iq>`);
  t.match(await reply(dev2, "pub"), /type="result"/, "dev2 published a sample");
});
t.teardown(async () => {
  for (const c of [op, dev1, dev2]) c?.close();
  await broker.close();
});

/** The whole stanza answering `id` (an empty element or one with children). */
async function reply(c: RawClient, id: string): Promise<string> {
  return (await c.expect(new RegExp(`<(iq|message|presence)\\b[^>]*\\bid="${id}"[^>]*?(/>|>.*?</\\1>)`, "s")))[0];
}

let seq = 0;
/** Sends `stanza` (with `{id}` and `{name}` holes) from `c` and returns the answer with both blanked. */
async function ask(c: RawClient, stanza: string, name?: string): Promise<string> {
  const id = `q${++seq}`;
  c.send(stanza.replaceAll("{id}", id).replaceAll("{name}", name ?? ""));
  const answer = (await reply(c, id)).replaceAll(`"${id}"`, '"ID"');
  return name ? answer.replaceAll(name, "NAME") : answer;
}

/** The questions a device might ask about another device, `{name}` standing for it. */
const QUESTIONS: Record<string, string> = {
  "pubsub disco#info on its node": `<iq type='get' id='{id}' to='pubsub.localhost'><query xmlns='${NS_DISCO_INFO}' node='telemetry/{name}'/></iq>`,
  "pubsub disco#items on its node": `<iq type='get' id='{id}' to='pubsub.localhost'><query xmlns='${NS_DISCO_ITEMS}' node='telemetry/{name}'/></iq>`,
  "pubsub items of its node": `<iq type='get' id='{id}' to='pubsub.localhost'><pubsub xmlns='${NS_PUBSUB}'><items node='telemetry/{name}'/></pubsub></iq>`,
  "pubsub subscribe to its node": `<iq type='set' id='{id}' to='pubsub.localhost'><pubsub xmlns='${NS_PUBSUB}'><subscribe node='telemetry/{name}' jid='dev1@localhost/fw'/></pubsub></iq>`,
  "pubsub publish to its node": `<iq type='set' id='{id}' to='pubsub.localhost'><pubsub xmlns='${NS_PUBSUB}'><publish node='telemetry/{name}'><item><json xmlns='urn:xmpp:json:0'>{"open":false}</json></item></publish></pubsub></iq>`,
  "disco#info on its bare JID": `<iq type='get' id='{id}' to='{name}@localhost'><query xmlns='${NS_DISCO_INFO}'/></iq>`,
  "disco#items on its bare JID": `<iq type='get' id='{id}' to='{name}@localhost'><query xmlns='${NS_DISCO_ITEMS}'/></iq>`,
  "disco#info on its full JID": `<iq type='get' id='{id}' to='{name}@localhost/fw'><query xmlns='${NS_DISCO_INFO}'/></iq>`,
  "its command list": `<iq type='get' id='{id}' to='{name}@localhost'><query xmlns='${NS_DISCO_ITEMS}' node='${NS_COMMANDS}'/></iq>`,
  "its command list on /mqtt": `<iq type='get' id='{id}' to='{name}@localhost/mqtt'><query xmlns='${NS_DISCO_ITEMS}' node='${NS_COMMANDS}'/></iq>`,
  "disco#info on a command node": `<iq type='get' id='{id}' to='{name}@localhost'><query xmlns='${NS_DISCO_INFO}' node='reboot'/></iq>`,
  "executing a command": `<iq type='set' id='{id}' to='{name}@localhost'><command xmlns='${NS_COMMANDS}' node='reboot' action='execute'/></iq>`,
  "last activity": `<iq type='get' id='{id}' to='{name}@localhost'><query xmlns='jabber:iq:last'/></iq>`,
  "a XEP-0323 read-out": `<iq type='get' id='{id}' to='{name}@localhost'><req xmlns='urn:xmpp:iot:sensordata' seqnr='1' momentary='true'/></iq>`,
  "a XEP-0325 set": `<iq type='set' id='{id}' to='{name}@localhost'><set xmlns='urn:xmpp:iot:control'><boolean name='open' value='true'/></set></iq>`,
  "its roster": `<iq type='get' id='{id}' to='{name}@localhost'><query xmlns='jabber:iq:roster'/></iq>`,
  "a ping to its bare JID": `<iq type='get' id='{id}' to='{name}@localhost'><ping xmlns='urn:xmpp:ping'/></iq>`,
  "a ping to its full JID": `<iq type='get' id='{id}' to='{name}@localhost/fw'><ping xmlns='urn:xmpp:ping'/></iq>`,
  "a message": `<message type='chat' id='{id}' to='{name}@localhost'><body>hello</body></message>`,
  "a presence probe": `<presence type='probe' id='{id}' to='{name}@localhost'/>`,
};

t.test("pubsub disco#items: a device sees its own node only; operators see every node", async (t) => {
  const mine = await ask(dev1, `<iq type='get' id='{id}' to='pubsub.localhost'><query xmlns='${NS_DISCO_ITEMS}'/></iq>`);
  const nodes = [...mine.matchAll(/node="([^"]*)"/g)].map((m) => m[1]);
  t.same(nodes, ["telemetry/dev1"], "only telemetry/dev1 (not telemetry, not telemetry/dev2)");
  t.notMatch(mine, /dev2/);
  const all = await ask(op, `<iq type='get' id='{id}' to='pubsub.localhost'><query xmlns='${NS_DISCO_ITEMS}'/></iq>`);
  t.same([...all.matchAll(/node="([^"]*)"/g)].map((m) => m[1]).sort(), ["telemetry", "telemetry/dev1", "telemetry/dev2"]);
});

t.test("a device's own node answers; the all-devices node does not exist for it", async (t) => {
  const own = await ask(dev1, QUESTIONS["pubsub disco#info on its node"]!, "dev1");
  t.match(own, /type="result"/);
  t.match(own, /<identity category="pubsub" type="leaf"/);
  const all = await ask(dev1, `<iq type='get' id='{id}' to='pubsub.localhost'><query xmlns='${NS_DISCO_INFO}' node='telemetry'/></iq>`);
  t.match(all, /<item-not-found /);
  const forOp = await ask(op, QUESTIONS["pubsub disco#info on its node"]!, "dev2");
  t.match(forOp, /<identity category="pubsub" type="leaf"/, "an operator sees dev2's node");
});

t.test("every question about another device answers as for a device that does not exist", async (t) => {
  for (const [what, stanza] of Object.entries(QUESTIONS)) {
    const other = await ask(dev1, stanza, "dev2");
    const ghost = await ask(dev1, stanza, "ghost");
    t.equal(other, ghost, what);
    t.match(other, /type="error"/, `${what}: refused`);
  }
});

t.test("the domain's listings name no device to a device", async (t) => {
  const items = await ask(dev1, `<iq type='get' id='{id}' to='localhost'><query xmlns='${NS_DISCO_ITEMS}'/></iq>`);
  t.match(items, /type="result"/);
  const commands = await ask(dev1, `<iq type='get' id='{id}' to='localhost'><query xmlns='${NS_DISCO_ITEMS}' node='${NS_COMMANDS}'/></iq>`);
  t.match(commands, /type="result"/);
  t.notMatch(commands, /<item /, "no command offered to a device");
  const run = await ask(dev1, `<iq type='set' id='{id}' to='localhost'><command xmlns='${NS_COMMANDS}' node='list-online-devices' action='execute'/></iq>`);
  t.match(run, /<forbidden /);
  const roster = await ask(dev1, "<iq type='get' id='{id}'><query xmlns='jabber:iq:roster'/></iq>");
  t.match(roster, /type="result"/);
  t.notMatch(roster, /<item /, "a device's roster is empty");
  for (const answer of [items, commands, run, roster]) t.notMatch(answer, /dev2/);
});

t.test("nothing a device receives while another comes, goes and publishes names it", async (t) => {
  const watcher = await online("dev1", "watcher");
  watcher.send("<iq type='get' id='r' to='dev1@localhost'><query xmlns='jabber:iq:roster'/></iq>");
  await reply(watcher, "r");
  dev2.send("<presence type='unavailable'/>");
  dev2.send("<presence><status>back</status></presence>");
  dev2.send(`<iq type='set' id='pub2' to='pubsub.localhost'><pubsub xmlns='${NS_PUBSUB}'><publish node='telemetry/dev2'><item><json xmlns='urn:xmpp:json:0'>{"open":false}</json></item></publish></pubsub></iq>`);
  await reply(dev2, "pub2");
  watcher.send(`<iq type='get' id='l' to='pubsub.localhost'><query xmlns='${NS_DISCO_ITEMS}'/></iq>`);
  await reply(watcher, "l");
  t.notMatch(watcher.log, /dev2|door-sensor/);
  watcher.close();
});
