"""A job that does nothing: RQ's own floor for the publish benchmark."""


def noop(post_id: str) -> str:
    return post_id
