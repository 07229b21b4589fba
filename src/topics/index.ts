/**
 * Topics: MQTT Topic Name / Topic Filter rules (MQTT 4.7, 4.8.2), the subscription index
 * (TopicTrie: filter -> entries, matched by topic) and the retained-message index (TopicTree: topic ->
 * value, matched by filter). Pure code, no I/O.
 */

export { TopicTree } from './tree.js';
export { TopicTrie, type TrieVisitor } from './trie.js';
export {
  isDollarTopic,
  isValidTopicFilter,
  isValidTopicName,
  MAX_TOPIC_BYTES,
  type ParsedSubscription,
  parseSubscription,
  SHARE_PREFIX,
  topicLevelCount,
  topicMatches,
  utf8ByteLength,
} from './validate.js';
