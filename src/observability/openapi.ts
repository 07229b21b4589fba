/**
 * The admin API's OpenAPI 3.1 document, served at /api/v1/openapi.json. One source for the routes
 * admin-api.ts serves and the shapes it answers with: test/integration/admin-openapi.test.ts checks
 * that every route and method served is described here (and nothing more), and validates real
 * answers against these schemas. docs/admin-api.md explains each endpoint.
 */

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const nullable = (type: string) => ({ type: [type, 'null'] });
const json = (schema: unknown) => ({ 'application/json': { schema } });
const ok = (description: string, schema: unknown) => ({
  '200': { description, content: json(schema) },
  default: { description: 'An error (docs/errors.md)', content: json(ref('Error')) },
});
const query = (name: string, description: string, required = false) => ({
  name,
  in: 'query',
  required,
  description,
  schema: { type: 'string' },
});
const clientId = { name: 'clientId', in: 'path', required: true, schema: { type: 'string' } };

const CLIENT_PROPERTIES = {
  clientId: { type: 'string' },
  connected: { type: 'boolean' },
  username: nullable('string'),
  protocolVersion: nullable('integer'),
  listener: nullable('string'),
  remoteAddress: nullable('string'),
  sessionExpirySeconds: { type: 'integer' },
  subscriptionCount: { type: 'integer' },
  inflight: { type: 'integer' },
  queued: { type: 'integer' },
};

export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'Shoal admin API',
    version: '1',
    description:
      'Operations on a Shoal node and its cluster (docs/admin-api.md). Bearer token: admin.token (everything) or admin.readOnlyToken (GET only).',
  },
  servers: [{ url: '/api/v1' }],
  security: [{ bearer: [] }],
  paths: {
    '/nodes': {
      get: {
        summary: 'The live nodes of the cluster',
        responses: ok('Nodes', {
          type: 'object',
          required: ['nodes'],
          properties: { nodes: { type: 'array', items: ref('Node') } },
        }),
      },
    },
    '/clients': {
      get: {
        summary: "This node's clients, in client id order, paged",
        parameters: [
          query('prefix', 'Only client ids starting with this'),
          query('username', 'Only clients of this user name'),
          query('after', "The previous page's next"),
          query('limit', 'Page size, 1..1000 (default 100)'),
        ],
        responses: ok('A page of clients', ref('ClientPage')),
      },
    },
    '/clients/{clientId}': {
      get: {
        summary: 'One client, on whichever node serves it',
        parameters: [clientId],
        responses: ok('The client', ref('ClientDetail')),
      },
      delete: {
        summary: 'Disconnects the client (MQTT 5: DISCONNECT 0x98) on whichever node serves it',
        parameters: [clientId, query('discardSession', 'true: also end its session')],
        responses: ok('Kicked', {
          type: 'object',
          required: ['kicked', 'node', 'sessionDiscarded'],
          properties: {
            kicked: { type: 'string' },
            node: nullable('string'),
            sessionDiscarded: { type: 'boolean' },
          },
        }),
      },
    },
    '/subscriptions': {
      get: {
        summary: 'Who subscribes to a topic: every matching subscription in the cluster',
        parameters: [query('topic', 'A topic name (no wildcards)', true)],
        responses: ok('The subscriptions', {
          type: 'object',
          required: ['topic', 'items'],
          properties: { topic: { type: 'string' }, items: { type: 'array', items: ref('Subscriber') } },
        }),
      },
    },
    '/retained': {
      get: {
        summary: 'Retained messages matching a filter, paged',
        parameters: [
          query('filter', 'A topic filter (default #)'),
          query('after', "The previous page's next"),
          query('limit', 'Page size, 1..1000'),
        ],
        responses: ok('A page of retained messages', ref('RetainedPage')),
      },
      delete: {
        summary: 'Deletes the retained messages matching a filter',
        parameters: [query('filter', 'A topic filter (# for all)', true)],
        responses: ok('Deleted', {
          type: 'object',
          required: ['deleted'],
          properties: { deleted: { type: 'integer' } },
        }),
      },
    },
    '/publish': {
      post: {
        summary: 'Publishes a message as a client would',
        requestBody: { required: true, content: json(ref('Publish')) },
        responses: ok('Published', {
          type: 'object',
          required: ['delivered'],
          properties: { delivered: { type: 'integer' } },
        }),
      },
    },
    '/log-level': {
      get: {
        summary: "This node's log level",
        responses: ok('The level', {
          type: 'object',
          required: ['level'],
          properties: { level: ref('LogLevel') },
        }),
      },
      put: {
        summary: 'Sets the log level of this node, or of every live node',
        requestBody: {
          required: true,
          content: json({
            type: 'object',
            required: ['level'],
            properties: { level: ref('LogLevel'), scope: { enum: ['node', 'cluster'] } },
          }),
        },
        responses: ok('Each node and its level now', {
          type: 'object',
          required: ['nodes'],
          properties: {
            nodes: {
              type: 'array',
              items: {
                type: 'object',
                required: ['nodeId'],
                properties: {
                  nodeId: { type: 'string' },
                  level: { type: 'string' },
                  error: { type: 'string' },
                },
              },
            },
          },
        }),
      },
    },
    '/drain': {
      post: {
        summary:
          'Drains this node as SIGTERM does: not ready, clients disconnected at drain.ratePerSecond, then the process ends',
        responses: ok('Draining', {
          type: 'object',
          required: ['draining'],
          properties: { draining: { const: true } },
        }),
      },
    },
    '/bans': {
      get: {
        summary: 'The bans in force, cluster-wide',
        responses: ok('The bans', {
          type: 'object',
          required: ['items'],
          properties: { items: { type: 'array', items: ref('Ban') } },
        }),
      },
      post: {
        summary:
          'Bans a client id, user name or address (IP or CIDR range): its CONNECTs get 0x8A, the clients it matches are disconnected on every node',
        requestBody: {
          required: true,
          content: json({
            type: 'object',
            required: ['kind', 'value'],
            properties: {
              kind: { enum: ['clientId', 'username', 'address'] },
              value: { type: 'string' },
              reason: { type: 'string' },
              seconds: { type: 'integer', minimum: 1 },
            },
          }),
        },
        responses: ok('The ban', { type: 'object', required: ['ban'], properties: { ban: ref('Ban') } }),
      },
    },
    '/bans/{id}': {
      delete: {
        summary: 'Lifts a ban',
        parameters: [
          {
            name: 'id',
            in: 'path',
            required: true,
            description: '<kind>:<value>, e.g. clientId:sensor-17',
            schema: { type: 'string' },
          },
        ],
        responses: ok('Removed', {
          type: 'object',
          required: ['removed'],
          properties: { removed: { type: 'string' } },
        }),
      },
    },
    '/delayed': {
      get: {
        summary: 'Delayed messages waiting ($delayed/<seconds>/<topic>), by due time, paged',
        parameters: [query('after', "The previous page's next"), query('limit', 'Page size, 1..1000')],
        responses: ok('A page of delayed messages', {
          type: 'object',
          required: ['items', 'next'],
          properties: {
            items: {
              type: 'array',
              items: {
                type: 'object',
                required: ['id', 'topic', 'qos', 'retain', 'payloadBytes', 'dueAt'],
                properties: {
                  id: { type: 'string' },
                  topic: { type: 'string' },
                  qos: { type: 'integer' },
                  retain: { type: 'boolean' },
                  payloadBytes: { type: 'integer' },
                  dueAt: { type: 'number', description: 'When it is published (ms since the epoch)' },
                },
              },
            },
            next: nullable('string'),
          },
        }),
      },
    },
    '/delayed/{id}': {
      delete: {
        summary: 'Cancels a delayed message not yet published',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: ok('Cancelled', {
          type: 'object',
          required: ['cancelled'],
          properties: { cancelled: { type: 'string' } },
        }),
      },
    },
    '/openapi.json': {
      get: { summary: 'This document', responses: ok('The OpenAPI document', { type: 'object' }) },
    },
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        properties: {
          error: {
            type: 'object',
            required: ['code', 'message'],
            properties: { code: { type: 'string' }, message: { type: 'string' } },
          },
        },
      },
      Node: {
        type: 'object',
        required: ['nodeId', 'self', 'lastSeenMs'],
        properties: { nodeId: { type: 'string' }, self: { type: 'boolean' }, lastSeenMs: nullable('number') },
      },
      Client: { type: 'object', required: Object.keys(CLIENT_PROPERTIES), properties: CLIENT_PROPERTIES },
      ClientPage: {
        type: 'object',
        required: ['items', 'next'],
        properties: { items: { type: 'array', items: ref('Client') }, next: nullable('string') },
      },
      ClientDetail: {
        type: 'object',
        required: [...Object.keys(CLIENT_PROPERTIES), 'subscriptions', 'node'],
        properties: {
          ...CLIENT_PROPERTIES,
          node: { type: 'string', description: 'The node serving the client' },
          subscriptions: {
            type: 'array',
            items: {
              type: 'object',
              required: [
                'topicFilter',
                'qos',
                'noLocal',
                'retainAsPublished',
                'retainHandling',
                'subscriptionIdentifier',
              ],
              properties: {
                topicFilter: { type: 'string' },
                qos: { type: 'integer' },
                noLocal: { type: 'boolean' },
                retainAsPublished: { type: 'boolean' },
                retainHandling: { type: 'integer' },
                subscriptionIdentifier: nullable('integer'),
              },
            },
          },
        },
      },
      Subscriber: {
        type: 'object',
        required: ['clientId', 'topicFilter', 'qos', 'node', 'persistent'],
        properties: {
          clientId: { type: 'string' },
          topicFilter: { type: 'string' },
          qos: { type: 'integer' },
          node: nullable('string'),
          persistent: { type: 'boolean' },
        },
      },
      Retained: {
        type: 'object',
        required: ['topic', 'qos', 'payloadBytes', 'payload', 'encoding', 'contentType', 'expiresInSeconds'],
        properties: {
          topic: { type: 'string' },
          qos: { type: 'integer' },
          payloadBytes: { type: 'integer' },
          payload: nullable('string'),
          encoding: { enum: ['utf8', 'base64'] },
          contentType: nullable('string'),
          expiresInSeconds: nullable('integer'),
        },
      },
      RetainedPage: {
        type: 'object',
        required: ['items', 'next'],
        properties: { items: { type: 'array', items: ref('Retained') }, next: nullable('string') },
      },
      Publish: {
        type: 'object',
        required: ['topic'],
        properties: {
          topic: { type: 'string' },
          payload: { type: 'string' },
          encoding: { enum: ['utf8', 'base64'] },
          qos: { enum: [0, 1, 2] },
          retain: { type: 'boolean' },
          properties: { type: 'object' },
        },
      },
      LogLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
      Ban: {
        type: 'object',
        required: ['kind', 'value', 'reason', 'until', 'by', 'at'],
        properties: {
          kind: { enum: ['clientId', 'username', 'address'] },
          value: { type: 'string' },
          reason: { type: 'string' },
          until: { type: ['number', 'null'], description: 'When it ends (ms since the epoch); null: never' },
          by: { type: 'string', description: 'admin or flapping' },
          at: { type: 'number' },
        },
      },
    },
  },
} as const;
