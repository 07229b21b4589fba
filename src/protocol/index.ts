/** The MQTT wire protocol: packets, properties, reason codes, the streaming decoder and the encoder. */
export * from './decoder.js';
export * from './encoder.js';
export * from './errors.js';
export * from './packets.js';
export { PROPERTY_DEFS, type PropertyContext, propertyAllowed } from './properties.js';
export * from './reason-codes.js';
