// MQTT 3.1.1 §4.6: a server MUST send PUBACKs in the order the QoS 1 PUBLISHes were
// received. An accepted sample is answered when the spool has committed it (in spool
// order), a refused one at once: without this, a refusal overtakes the PUBACKs of
// samples sent before it. Each publish of a connection takes a ticket when it arrives;
// an answer runs only after every earlier ticket's.
export class InOrder {
  private issued = 0;
  private next = 0;
  /** Answers that came before an earlier ticket's, by ticket. */
  private readonly waiting = new Map<number, () => void>();

  ticket(): number {
    return this.issued++;
  }

  answer(ticket: number, answer: () => void): void {
    if (ticket !== this.next) {
      this.waiting.set(ticket, answer);
      return;
    }
    this.next++;
    answer();
    for (let later = this.waiting.get(this.next); later !== undefined; later = this.waiting.get(this.next)) {
      this.waiting.delete(this.next);
      this.next++;
      later();
    }
  }
}
