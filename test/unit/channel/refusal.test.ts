/**
 * The last packet of a connection (src/channel/refusal.ts): CONNACK, DISCONNECT or a bare close, for
 * each reason a connection ends, each protocol version and each channel state. The same decisions
 * over sockets: test/integration/broker/connect.test.ts, malformed.test.ts, connect-auth.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { ChannelState } from '../../../src/channel/channel.js';
import { type Ending, type EndingChannel, finalPacket, isAuthFailure } from '../../../src/channel/refusal.js';
import {
  allowedReasonCodes,
  decodeAll,
  encode,
  PROTOCOL_ERRORS,
  ProtocolError,
  type ProtocolErrorCode,
  type ProtocolVersion,
  ReasonCode,
} from '../../../src/protocol/index.js';
import { hex } from '../../fixtures/hex.js';

const at = (state: ChannelState, version: ProtocolVersion, problemInformation = true): EndingChannel => ({
  state,
  version,
  problemInformation,
});
const violation = (code: ProtocolErrorCode, message = 'bad'): Ending => ({
  kind: 'violation',
  error: new ProtocolError(code, message),
});
const refuse = (reasonCode: number): Ending => ({ kind: 'refuse', reasonCode });
/** The bytes that go out, or undefined for a bare close. */
const bytes = (ending: Ending, ch: EndingChannel) => {
  const last = finalPacket(ending, ch);
  return last === undefined ? undefined : encode(last.packet, last.version);
};
const PROTOCOL_CODES = Object.keys(PROTOCOL_ERRORS) as ProtocolErrorCode[];

describe('an unsupported protocol level', () => {
  it('[MQTT-3.1.2-2] a 3.1 / 3.1.1 CONNACK with return code 1 is exactly 20 02 00 01', () => {
    const connack = { type: 'connack', sessionPresent: false, reasonCode: 1 } as const;
    expect(encode(connack, 3)).toEqual(hex`20 02 00 01`);
    expect(encode(connack, 4)).toEqual(hex`
      20     CONNACK
      02     remaining length 2
      00     Session Present 0
      01     return code 1: unacceptable protocol level`);
  });

  it.each([3, 4, 5] as const)(
    '[MQTT-3.1.2-2] [MQTT-3.2.2-6] gets CONNACK 0x01 in the 3.1.1 form whatever the channel assumed (%i)',
    (version) => {
      expect(finalPacket(violation('UNSUPPORTED_PROTOCOL_VERSION'), at('awaiting-connect', version))).toEqual(
        {
          packet: { type: 'connack', sessionPresent: false, reasonCode: 1 },
          version: 4,
        },
      );
      expect(bytes(violation('UNSUPPORTED_PROTOCOL_VERSION'), at('awaiting-connect', version))).toEqual(
        hex`20 02 00 01`,
      );
    },
  );

  it.each(['UNSUPPORTED_PROTOCOL_VERSION', 'UNSUPPORTED_PROTOCOL_NAME'] as const)(
    '[MQTT-3.1.0-2] [MQTT-3.14.2-1] as a second CONNECT after CONNACK (%s) gets DISCONNECT 0x82, never 0x84',
    (code) => {
      const last = finalPacket(violation(code, 'a second CONNECT'), at('connected', 5));
      expect(last).toEqual({
        packet: {
          type: 'disconnect',
          reasonCode: ReasonCode.ProtocolError,
          properties: { reasonString: 'a second CONNECT' },
        },
        version: 5,
      });
    },
  );

  it('[MQTT-3.1.2-1] an unknown protocol name closes without CONNACK', () => {
    expect(finalPacket(violation('UNSUPPORTED_PROTOCOL_NAME'), at('awaiting-connect', 4))).toBeUndefined();
  });
});

describe('a protocol error before CONNACK', () => {
  it.each([3, 4, 5] as const)(
    '[MQTT-3.1.4-1] a CONNECT that does not conform closes without CONNACK (%i)',
    (version) => {
      expect(finalPacket(violation('MALFORMED_PACKET'), at('awaiting-connect', version))).toBeUndefined();
      expect(finalPacket(violation('PROTOCOL_ERROR'), at('awaiting-connect', version))).toBeUndefined();
    },
  );

  it.each(PROTOCOL_CODES.filter((c) => c !== 'UNSUPPORTED_PROTOCOL_VERSION'))(
    '[MQTT-3.2.2-6] [MQTT-3.2.2-8] MQTT 5 with its CONNECT read (%s): CONNACK with an allowed reason code, Session Present 0',
    (code) => {
      const last = finalPacket(violation(code), at('connecting', 5));
      const own = PROTOCOL_ERRORS[code].reasonCode;
      // Codes only a connected client can cause (0x93, 0x94, 0xA1) have no place in CONNACK: 0x82.
      const expected = allowedReasonCodes.connack.has(own) ? own : ReasonCode.ProtocolError;
      expect(last).toEqual({
        packet: { type: 'connack', sessionPresent: false, reasonCode: expected },
        version: 5,
      });
      expect(allowedReasonCodes.connack.has(expected)).toBe(true);
    },
  );

  it('(MQTT 5 §4.12) an AUTH out of turn during enhanced authentication gets CONNACK 0x82', () => {
    expect(bytes(violation('PROTOCOL_ERROR'), at('connecting', 5))).toEqual(hex`
      20     CONNACK
      03     remaining length 3
      00     Session Present 0
      82     reason code: Protocol Error
      00     no properties`);
  });

  it.each([3, 4] as const)('a 3.x client (%i) with its CONNECT read: close without CONNACK', (version) => {
    expect(finalPacket(violation('MALFORMED_PACKET'), at('connecting', version))).toBeUndefined();
  });
});

describe('a protocol error after CONNACK', () => {
  it.each(PROTOCOL_CODES)(
    '[MQTT-4.13.1-1] [MQTT-3.14.2-1] MQTT 5 (%s): DISCONNECT with an allowed reason code and the message',
    (code) => {
      const last = finalPacket(violation(code, 'what went wrong'), at('connected', 5));
      const expected =
        PROTOCOL_ERRORS[code].reasonCode === ReasonCode.UnsupportedProtocolVersion
          ? ReasonCode.ProtocolError
          : PROTOCOL_ERRORS[code].reasonCode;
      expect(last).toEqual({
        packet: { type: 'disconnect', reasonCode: expected, properties: { reasonString: 'what went wrong' } },
        version: 5,
      });
      expect(allowedReasonCodes.disconnect.has(expected)).toBe(true);
    },
  );

  it('[MQTT-4.13.1-1] the DISCONNECT decodes as sent', () => {
    const wire = bytes(
      violation('TOPIC_ALIAS_INVALID', 'topic alias 9 is out of range'),
      at('connected', 5),
    )!;
    expect(decodeAll(wire, { version: 5 })).toEqual([
      { type: 'disconnect', reasonCode: 0x94, properties: { reasonString: 'topic alias 9 is out of range' } },
    ]);
  });

  it('(MQTT 5 §3.1.2.11.7) with Request Problem Information 0 the DISCONNECT carries no Reason String', () => {
    expect(finalPacket(violation('QOS_NOT_SUPPORTED'), at('connected', 5, false))).toEqual({
      packet: { type: 'disconnect', reasonCode: ReasonCode.QoSNotSupported, properties: undefined },
      version: 5,
    });
  });

  it.each([3, 4] as const)('a 3.x client (%i): close, 3.x has no DISCONNECT from the server', (version) => {
    for (const code of PROTOCOL_CODES)
      expect(finalPacket(violation(code), at('connected', version))).toBeUndefined();
  });

  it('a closed channel sends nothing more', () => {
    expect(finalPacket(violation('PROTOCOL_ERROR'), at('closed', 5))).toBeUndefined();
  });
});

describe('a refused CONNECT', () => {
  const refusals = [
    ReasonCode.ClientIdentifierNotValid,
    ReasonCode.BadUserNameOrPassword,
    ReasonCode.NotAuthorized,
    ReasonCode.ServerUnavailable,
    ReasonCode.ServerBusy,
    ReasonCode.Banned,
    ReasonCode.BadAuthenticationMethod,
    ReasonCode.TopicNameInvalid,
    ReasonCode.QuotaExceeded,
    ReasonCode.PayloadFormatInvalid,
    ReasonCode.RetainNotSupported,
    ReasonCode.QoSNotSupported,
    ReasonCode.ConnectionRateExceeded,
  ];

  it.each(refusals.map((code) => [code.toString(16), code] as const))(
    '[MQTT-3.1.4-2] [MQTT-3.2.2-6] MQTT 5: CONNACK 0x%s, Session Present 0',
    (_hex, reasonCode) => {
      expect(finalPacket(refuse(reasonCode), at('connecting', 5))).toEqual({
        packet: { type: 'connack', sessionPresent: false, reasonCode },
        version: 5,
      });
      expect(allowedReasonCodes.connack.has(reasonCode)).toBe(true);
    },
  );

  it.each(
    [
      [ReasonCode.ClientIdentifierNotValid, 2],
      [ReasonCode.BadUserNameOrPassword, 4],
      [ReasonCode.BadAuthenticationMethod, 4],
      [ReasonCode.NotAuthorized, 5],
      [ReasonCode.Banned, 5],
      [ReasonCode.ServerUnavailable, 3],
      [ReasonCode.ServerBusy, 3],
      [ReasonCode.QuotaExceeded, 3],
      [ReasonCode.ConnectionRateExceeded, 3],
      [ReasonCode.QoSNotSupported, 3],
    ].map(([code, returnCode]) => [code.toString(16), code, returnCode] as const),
  )('[MQTT-3.2.2-6] 3.1 and 3.1.1: reason 0x%s becomes return code %i', (_hex, reasonCode, returnCode) => {
    for (const version of [3, 4] as const) {
      expect(finalPacket(refuse(reasonCode), at('connecting', version))).toEqual({
        packet: { type: 'connack', sessionPresent: false, reasonCode: returnCode },
        version,
      });
      expect(bytes(refuse(reasonCode), at('connecting', version))).toEqual(hex`20 02 00 0${returnCode}`);
    }
  });

  it('[MQTT-3.1.3-8] a refused client identifier: CONNACK 0x85, at 3.1.1 return code 2 (20 02 00 02)', () => {
    expect(bytes(refuse(ReasonCode.ClientIdentifierNotValid), at('connecting', 5))).toEqual(
      hex`20 03 00 85 00`,
    );
    expect(bytes(refuse(ReasonCode.ClientIdentifierNotValid), at('connecting', 4))).toEqual(hex`
      20     CONNACK
      02     remaining length 2
      00     Session Present 0
      02     return code 2: identifier rejected`);
  });

  it('authentication failures (0x86, 0x87, 0x8C) are counted; a server that could not check is not', () => {
    expect(
      [0x86, 0x87, 0x8c, 0x85, 0x88, 0x89, 0x97, 0x9f]
        .filter((code) => isAuthFailure(code))
        .map((c) => c.toString(16)),
    ).toEqual(['86', '87', '8c']);
  });
});

describe('a server-initiated disconnect', () => {
  const takeover: Ending = {
    kind: 'disconnect',
    reasonCode: ReasonCode.SessionTakenOver,
    reasonString: 'session taken over',
  };

  it('[MQTT-3.1.4-3] MQTT 5 after CONNACK: DISCONNECT with the reason code and string', () => {
    expect(finalPacket(takeover, at('connected', 5))).toEqual({
      packet: { type: 'disconnect', reasonCode: 0x8e, properties: { reasonString: 'session taken over' } },
      version: 5,
    });
  });

  it.each(['awaiting-connect', 'connecting', 'closed'] as const)(
    '[MQTT-3.14.0-1] no DISCONNECT before a successful CONNACK, nor after the close (%s)',
    (state) => {
      expect(finalPacket(takeover, at(state, 5))).toBeUndefined();
    },
  );

  it.each([3, 4] as const)('a 3.x client (%i): a bare close', (version) => {
    expect(finalPacket(takeover, at('connected', version))).toBeUndefined();
  });

  it('(MQTT 5 §4.11) 0x9C Use another server carries the Server Reference, even without problem information', () => {
    const drain: Ending = {
      kind: 'disconnect',
      reasonCode: ReasonCode.UseAnotherServer,
      reasonString: 'server shutting down',
      serverReference: 'other:1883',
    };
    expect(finalPacket(drain, at('connected', 5))?.packet).toEqual({
      type: 'disconnect',
      reasonCode: 0x9c,
      properties: { reasonString: 'server shutting down', serverReference: 'other:1883' },
    });
    expect(finalPacket(drain, at('connected', 5, false))?.packet).toEqual({
      type: 'disconnect',
      reasonCode: 0x9c,
      properties: { serverReference: 'other:1883' },
    });
  });

  it('(MQTT 5 §3.14.2.2.1) a reason without a string: DISCONNECT with the reason code alone', () => {
    const keepAlive: Ending = { kind: 'disconnect', reasonCode: ReasonCode.KeepAliveTimeout };
    expect(bytes(keepAlive, at('connected', 5))).toEqual(hex`
      e0     DISCONNECT
      01     remaining length 1: no Property Length (MQTT 5 §3.14.2.2.1)
      8d     reason code: Keep Alive timeout`);
  });
});
