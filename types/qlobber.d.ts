// qlobber 8 ships no typings: the part bridges/mqtt/cluster-audience.ts uses.
declare module "qlobber" {
  interface Options {
    separator?: string;
    wildcard_one?: string;
    wildcard_some?: string;
    match_empty_levels?: boolean;
  }
  /** A topic trie that only says whether anything matches. */
  export class QlobberTrue {
    constructor(options?: Options);
    add(filter: string): this;
    remove(filter: string): this;
    test(topic: string): boolean;
  }
}
