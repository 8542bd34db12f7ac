// Bare aedes as its README sets it up: createBroker() with default options,
// net.createServer(broker.handle), no authentication, no persistence beyond
// the default in-memory one. Listens on a free loopback port (or $PORT) and
// prints one JSON line {"msg":"listening","mqtt":<port>}. NODELAY=1 turns
// Nagle's algorithm off on its sockets (an experiment; Node's default is on).
import net from 'node:net';

const { Aedes } = await import('aedes');
const broker = await Aedes.createBroker();
const server = net.createServer({ noDelay: process.env.NODELAY === '1' }, broker.handle);
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'listening', mqtt: server.address().port }));
});
const stop = () => broker.close(() => server.close(() => process.exit(0)));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
