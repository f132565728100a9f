// The sentence the new-session form shows under a repository about its image: GET /v1/repos
// gives each repository its newest image build (`image`: {status, commit, started_at,
// finished_at, error}, or null before the first; PROTOCOL.md, "Repository images"). No DOM here.

import { shortCommit } from './github.js';

const text = (value) => (typeof value === 'string' ? value : '');

/** {text, failed} for a repository's `image`; `text` is empty when there is nothing to say. */
export function imageNote(image) {
  if (!image || typeof image !== 'object') return { text: '', failed: false };
  const commit = shortCommit(image.commit);
  const of = commit ? ` of ${commit}` : '';
  switch (image.status) {
    case 'ready':
      return { text: `New sandboxes start from an image${of}.`, failed: false };
    case 'building':
      return { text: `An image${of} is being built.`, failed: false };
    case 'failed': {
      const why = text(image.error).trim();
      return {
        text: `The image build${of} failed${why ? `: ${why}` : ''}. New sandboxes start from the last image that built, or clone the repository.`,
        failed: true,
      };
    }
    default:
      return { text: '', failed: false };
  }
}
