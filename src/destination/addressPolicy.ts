import dns from 'node:dns';
import net, { type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { PermanentError } from '../queue/errors.js';

/** The destination's host or address may not be used: retrying cannot change that. */
export class DestinationNotAllowedError extends PermanentError {
  constructor(message: string) {
    super('destination_not_allowed', message);
  }
}

/**
 * A host as compared with UPLOAD_ALLOWED_HOSTS: lower case, without IPv6
 * brackets or a trailing dot, IP literals in ipaddr.js's canonical form with
 * IPv4-mapped IPv6 turned into IPv4 (so `[::ffff:7f00:1]` is `127.0.0.1`).
 * WHATWG URL has already turned decimal, hex and octal IPv4 forms into dotted quads.
 */
export function canonicalHost(host: string): string {
  const bare = host.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  return net.isIP(bare) === 0 ? bare : ipaddr.process(bare).toString();
}

/**
 * Why an address may not be connected to, or null. Only public unicast
 * passes: ipaddr.js names every special range (private, loopback,
 * linkLocal, uniqueLocal, unspecified, carrierGradeNat, multicast,
 * reserved, 6to4, teredo, rfc6052 NAT64…), and any of them could lead
 * into the server's own network.
 */
function addressRefusal(address: string): string | null {
  const range = ipaddr.process(address).range();
  return range === 'unicast' ? null : `${address} is a ${range} address`;
}

export type AddressPolicy = ReturnType<typeof createAddressPolicy>;

/**
 * The rule for which hosts an HTTP destination may reach. UPLOAD_ALLOWED_HOSTS
 * unset: any host whose every address is public unicast. Set: only the
 * listed hosts (names or IP literals), which may then be private or loopback.
 */
export function createAddressPolicy(allowedHosts: readonly string[] | undefined) {
  const listed = allowedHosts === undefined ? null : new Set(allowedHosts.map(canonicalHost));
  const unlisted = ' is not allowed; list it in UPLOAD_ALLOWED_HOSTS to upload there';

  /** Resolves like `dns.lookup`, but fails the connection when any address the name has is refused. */
  const guardedLookup: LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { family: options.family, hints: options.hints, all: true }, (error, addresses) => {
      if (error) {
        callback(error, '', 0);
        return;
      }
      const refusals = addresses.map((entry) => addressRefusal(entry.address)).filter((reason) => reason !== null);
      const first = addresses[0];
      if (refusals.length > 0 || first === undefined) {
        const reason = refusals.length > 0 ? refusals.join(', ') : 'no address';
        callback(new DestinationNotAllowedError(`host ${hostname} resolves to ${reason}, which${unlisted}`), '', 0);
      } else if (options.all) {
        callback(null, addresses);
      } else {
        callback(null, first.address, first.family);
      }
    });
  };

  return {
    /**
     * Why `hostname` (a URL's, as WHATWG URL parsed it) may not be used, or
     * null. Names are not resolved here: their addresses are checked when
     * the connection is made, through `lookupFor`.
     */
    hostRefusal(hostname: string): string | null {
      const host = canonicalHost(hostname);
      if (listed !== null) return listed.has(host) ? null : `host ${host}${unlisted}`;
      if (net.isIP(host) === 0) return null;
      const refusal = addressRefusal(host);
      return refusal === null ? null : `${refusal}, which${unlisted}`;
    },

    /**
     * The `lookup` for a connection to `hostname`, which must have passed
     * `hostRefusal`: a listed host resolves as usual (it may be private);
     * otherwise every resolved address is checked, so the address actually
     * connected to is one that passed. Node skips `lookup` for IP literals,
     * which is why `hostRefusal` checks those itself.
     */
    lookupFor(hostname: string): LookupFunction | undefined {
      return listed?.has(canonicalHost(hostname)) ? undefined : guardedLookup;
    },
  };
}
