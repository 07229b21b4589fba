/**
 * MQTT 5 properties (section 2.2.2): their identifiers and data types, which packets may carry each,
 * and their decoding, size and encoding. A property a packet may not carry, or an unknown identifier,
 * makes the packet malformed (2.2.2.2); a second copy of a single-valued property is a protocol error.
 */
import { malformed, protocolError } from './errors.js';
import type { Properties, UserProperty } from './packets.js';
import {
  MAX_VARIABLE_BYTE_INTEGER,
  type Reader,
  utf8Length,
  vbiLength,
  writeBinary,
  writeU16,
  writeU32,
  writeUtf8,
  writeVbi,
} from './primitives.js';

/** Where a property list stands: a packet type, or the Will Properties of a CONNECT. */
export type PropertyContext =
  | 'connect'
  | 'will'
  | 'connack'
  | 'publish'
  | 'puback'
  | 'pubrec'
  | 'pubrel'
  | 'pubcomp'
  | 'subscribe'
  | 'suback'
  | 'unsubscribe'
  | 'unsuback'
  | 'disconnect'
  | 'auth';

const contextBit: Record<PropertyContext, number> = {
  connect: 1 << 0,
  will: 1 << 1,
  connack: 1 << 2,
  publish: 1 << 3,
  puback: 1 << 4,
  pubrec: 1 << 5,
  pubrel: 1 << 6,
  pubcomp: 1 << 7,
  subscribe: 1 << 8,
  suback: 1 << 9,
  unsubscribe: 1 << 10,
  unsuback: 1 << 11,
  disconnect: 1 << 12,
  auth: 1 << 13,
};
const anyOf = (...contexts: PropertyContext[]): number => contexts.reduce((m, c) => m | contextBit[c], 0);

type DataType = 'byte' | 'boolByte' | 'u16' | 'u32' | 'vbi' | 'string' | 'binary' | 'pair';

interface PropertyDef {
  id: number;
  name: keyof Properties;
  type: DataType;
  contexts: number;
  /** Smallest allowed value for integers (e.g. Receive Maximum 0 is a protocol error). */
  min?: number;
}

const ackContexts = anyOf('puback', 'pubrec', 'pubrel', 'pubcomp');

/** Table of 2.2.2.2, in identifier order (the order the encoder writes them). */
export const PROPERTY_DEFS: readonly PropertyDef[] = [
  { id: 0x01, name: 'payloadFormatIndicator', type: 'boolByte', contexts: anyOf('publish', 'will') },
  { id: 0x02, name: 'messageExpiryInterval', type: 'u32', contexts: anyOf('publish', 'will') },
  { id: 0x03, name: 'contentType', type: 'string', contexts: anyOf('publish', 'will') },
  { id: 0x08, name: 'responseTopic', type: 'string', contexts: anyOf('publish', 'will') },
  { id: 0x09, name: 'correlationData', type: 'binary', contexts: anyOf('publish', 'will') },
  {
    id: 0x0b,
    name: 'subscriptionIdentifiers',
    type: 'vbi',
    contexts: anyOf('publish', 'subscribe'),
    min: 1, // "It is a Protocol Error if the Subscription Identifier has a value of 0" (MQTT 5 §3.3.2.3.8, §3.8.2.1.2)
  },
  {
    id: 0x11,
    name: 'sessionExpiryInterval',
    type: 'u32',
    contexts: anyOf('connect', 'connack', 'disconnect'),
  },
  { id: 0x12, name: 'assignedClientIdentifier', type: 'string', contexts: anyOf('connack') },
  { id: 0x13, name: 'serverKeepAlive', type: 'u16', contexts: anyOf('connack') },
  {
    id: 0x15,
    name: 'authenticationMethod',
    type: 'string',
    contexts: anyOf('connect', 'connack', 'auth'),
  },
  {
    id: 0x16,
    name: 'authenticationData',
    type: 'binary',
    contexts: anyOf('connect', 'connack', 'auth'),
  },
  { id: 0x17, name: 'requestProblemInformation', type: 'boolByte', contexts: anyOf('connect') },
  { id: 0x18, name: 'willDelayInterval', type: 'u32', contexts: anyOf('will') },
  { id: 0x19, name: 'requestResponseInformation', type: 'boolByte', contexts: anyOf('connect') },
  { id: 0x1a, name: 'responseInformation', type: 'string', contexts: anyOf('connack') },
  { id: 0x1c, name: 'serverReference', type: 'string', contexts: anyOf('connack', 'disconnect') },
  {
    id: 0x1f,
    name: 'reasonString',
    type: 'string',
    contexts: ackContexts | anyOf('connack', 'suback', 'unsuback', 'disconnect', 'auth'),
  },
  { id: 0x21, name: 'receiveMaximum', type: 'u16', contexts: anyOf('connect', 'connack'), min: 1 },
  { id: 0x22, name: 'topicAliasMaximum', type: 'u16', contexts: anyOf('connect', 'connack') },
  // Topic Alias 0 is handled by the channel (0x94 Topic Alias invalid), not here.
  { id: 0x23, name: 'topicAlias', type: 'u16', contexts: anyOf('publish') },
  { id: 0x24, name: 'maximumQoS', type: 'boolByte', contexts: anyOf('connack') },
  { id: 0x25, name: 'retainAvailable', type: 'boolByte', contexts: anyOf('connack') },
  {
    id: 0x26,
    name: 'userProperties',
    type: 'pair',
    contexts:
      ackContexts |
      anyOf(
        'connect',
        'will',
        'connack',
        'publish',
        'subscribe',
        'suback',
        'unsubscribe',
        'unsuback',
        'disconnect',
        'auth',
      ),
  },
  {
    id: 0x27,
    name: 'maximumPacketSize',
    type: 'u32',
    contexts: anyOf('connect', 'connack'),
    min: 1,
  },
  { id: 0x28, name: 'wildcardSubscriptionAvailable', type: 'boolByte', contexts: anyOf('connack') },
  { id: 0x29, name: 'subscriptionIdentifiersAvailable', type: 'boolByte', contexts: anyOf('connack') },
  { id: 0x2a, name: 'sharedSubscriptionAvailable', type: 'boolByte', contexts: anyOf('connack') },
];

const byId: (PropertyDef | undefined)[] = [];
for (const def of PROPERTY_DEFS) byId[def.id] = def;

/** Whether a property of this name may stand in this context. */
export function propertyAllowed(name: keyof Properties, context: PropertyContext): boolean {
  const def = PROPERTY_DEFS.find((d) => d.name === name);
  return def !== undefined && (def.contexts & contextBit[context]) !== 0;
}

/**
 * Reads a property list (length, then properties) from `r`. Returns undefined for an empty list so
 * packets without properties stay small.
 */
export function readProperties(r: Reader, context: PropertyContext): Properties | undefined {
  const length = r.vbi('the property length');
  if (length === 0) return undefined;
  if (length > r.remaining) throw malformed('property length exceeds the packet');
  const end = r.pos + length;
  const bit = contextBit[context];
  const props: Record<string, unknown> = {};
  while (r.pos < end) {
    const id = r.vbi('a property identifier');
    const def = byId[id];
    if (def === undefined) throw malformed(`unknown property identifier 0x${id.toString(16)}`);
    if ((def.contexts & bit) === 0) throw malformed(`property ${def.name} is not allowed in ${context}`);
    const value = readValue(r, def);
    if (def.type === 'pair') {
      const list = (props.userProperties as UserProperty[] | undefined) ?? [];
      list.push(value as UserProperty);
      props.userProperties = list;
    } else if (def.name === 'subscriptionIdentifiers') {
      const list = props.subscriptionIdentifiers as number[] | undefined;
      if (list !== undefined && context !== 'publish') {
        throw protocolError('Subscription Identifier included more than once');
      }
      if (list === undefined) props.subscriptionIdentifiers = [value];
      else list.push(value as number);
    } else {
      if (props[def.name] !== undefined) throw protocolError(`property ${def.name} included more than once`);
      props[def.name] = value;
    }
  }
  if (r.pos !== end) throw malformed('a property runs past the property length');
  return props as Properties;
}

function readValue(r: Reader, def: PropertyDef): unknown {
  switch (def.type) {
    case 'byte':
      return r.u8(def.name);
    case 'boolByte': {
      const v = r.u8(def.name);
      if (v > 1) throw protocolError(`${def.name} must be 0 or 1, got ${v}`);
      return v;
    }
    case 'u16':
      return checkMin(def, r.u16(def.name));
    case 'u32':
      return checkMin(def, r.u32(def.name));
    case 'vbi':
      return checkMin(def, r.vbi(def.name));
    case 'string':
      return r.utf8(def.name);
    case 'binary':
      return r.binary(def.name);
    case 'pair':
      return [r.utf8('a user property name'), r.utf8('a user property value')];
  }
}

function checkMin(def: PropertyDef, v: number): number {
  if (def.min !== undefined && v < def.min) throw protocolError(`${def.name} must not be ${v}`);
  return v;
}

/** Bytes the properties take, without the property-length prefix. */
export function propertiesLength(props: Properties | undefined): number {
  if (props === undefined) return 0;
  let n = 0;
  for (const key in props) {
    const value = (props as Record<string, unknown>)[key];
    if (value === undefined) continue;
    n += valueLength(key as keyof Properties, value);
  }
  return n;
}

function valueLength(name: keyof Properties, value: unknown): number {
  switch (name) {
    case 'payloadFormatIndicator':
    case 'requestProblemInformation':
    case 'requestResponseInformation':
    case 'maximumQoS':
    case 'retainAvailable':
    case 'wildcardSubscriptionAvailable':
    case 'subscriptionIdentifiersAvailable':
    case 'sharedSubscriptionAvailable':
      return 2;
    case 'serverKeepAlive':
    case 'receiveMaximum':
    case 'topicAliasMaximum':
    case 'topicAlias':
      return 3;
    case 'messageExpiryInterval':
    case 'sessionExpiryInterval':
    case 'willDelayInterval':
    case 'maximumPacketSize':
      return 5;
    case 'contentType':
    case 'responseTopic':
    case 'assignedClientIdentifier':
    case 'authenticationMethod':
    case 'responseInformation':
    case 'serverReference':
    case 'reasonString':
      return 3 + utf8Length(value as string);
    case 'correlationData':
    case 'authenticationData':
      return 3 + (value as Buffer).length;
    case 'subscriptionIdentifiers': {
      let n = 0;
      for (const id of value as number[]) n += 1 + vbiLength(id);
      return n;
    }
    case 'userProperties': {
      let n = 0;
      for (const [k, v] of value as UserProperty[]) n += 5 + utf8Length(k) + utf8Length(v);
      return n;
    }
    default:
      throw new TypeError(`unknown property ${String(name)}`);
  }
}

/** Writes the property length and the properties in identifier order; returns the new offset. */
export function writeProperties(
  buf: Buffer,
  offset: number,
  props: Properties | undefined,
  length: number,
): number {
  let o = writeVbi(buf, offset, length);
  if (props === undefined || length === 0) return o;
  for (const def of PROPERTY_DEFS) {
    const value = props[def.name];
    if (value === undefined) continue;
    switch (def.type) {
      case 'byte':
      case 'boolByte':
        buf[o++] = def.id;
        buf[o++] = value as number;
        break;
      case 'u16':
        buf[o++] = def.id;
        o = writeU16(buf, o, value as number);
        break;
      case 'u32':
        buf[o++] = def.id;
        o = writeU32(buf, o, value as number);
        break;
      case 'vbi':
        for (const id of value as number[]) {
          if (id < 1 || id > MAX_VARIABLE_BYTE_INTEGER) throw new RangeError(`subscription identifier ${id}`);
          buf[o++] = def.id;
          o = writeVbi(buf, o, id);
        }
        break;
      case 'string':
        buf[o++] = def.id;
        o = writeUtf8(buf, o, value as string, utf8Length(value as string));
        break;
      case 'binary':
        buf[o++] = def.id;
        o = writeBinary(buf, o, value as Buffer);
        break;
      case 'pair':
        for (const [k, v] of value as UserProperty[]) {
          buf[o++] = def.id;
          o = writeUtf8(buf, o, k, utf8Length(k));
          o = writeUtf8(buf, o, v, utf8Length(v));
        }
        break;
    }
  }
  return o;
}
