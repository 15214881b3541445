/**
 * Authentication of envelopes with a secret shared by every instance:
 * HMAC-SHA-256 (Web Crypto) over the channel name and the envelope's text,
 * appended to the envelope as its last field, `sig` (base64url, 43
 * characters):
 *
 * ```text
 * {"v":2,"node":"a1","seq":1723000000000001,"kind":"join","user":"ada","sig":"…"}
 * ```
 *
 * The signed text is the envelope without `,"sig":"…"` (so it stays one JSON
 * object, and the signature covers every byte of it); the channel is part of
 * the signed input, so a message cannot be replayed onto another channel.
 * Replays on the same channel are refused by the receiver with `seq` (see
 * `Inbox`).
 *
 * Internal: the `Cluster` uses it when given a `secret`.
 *
 * @module
 */

/** The shortest secret accepted, in characters. */
export const MIN_SECRET_LENGTH = 16;

const SIGNATURE = /,"sig":"([A-Za-z0-9_-]{43})"\}$/;
const encoder = new TextEncoder();

function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(
    /=+$/,
    "",
  );
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/") + "=");
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Signs and checks envelopes with one shared secret. */
export class EnvelopeSignature {
  #key: Promise<CryptoKey>;

  /**
   * Imports the secret as an HMAC key.
   *
   * @param secret The shared secret.
   * @throws {RangeError} When it is shorter than 16 characters.
   */
  constructor(secret: string) {
    if (typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH) {
      throw new RangeError(
        `Cannot create cluster: the secret must have at least ${MIN_SECRET_LENGTH} characters`,
      );
    }
    this.#key = crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
  }

  /**
   * Signs an encoded envelope for one channel.
   *
   * @param channel The channel it is published on.
   * @param text The encoded envelope (a JSON object).
   * @returns The envelope with `sig` as its last field.
   */
  async sign(channel: string, text: string): Promise<string> {
    const mac = await crypto.subtle.sign(
      "HMAC",
      await this.#key,
      encoder.encode(`${channel}\n${text}`),
    );
    return `${text.slice(0, -1)},"sig":"${toBase64Url(new Uint8Array(mac))}"}`;
  }

  /**
   * Checks a received envelope's signature.
   *
   * @param channel The channel it came on.
   * @param text The message.
   * @returns `true` when it carries a valid signature of this secret.
   */
  async verify(channel: string, text: string): Promise<boolean> {
    const match = SIGNATURE.exec(text);
    if (match === null) return false;
    const signed = `${text.slice(0, match.index)}}`;
    return await crypto.subtle.verify(
      "HMAC",
      await this.#key,
      fromBase64Url(match[1]),
      encoder.encode(`${channel}\n${signed}`),
    );
  }
}
