"""Step 2: one streamed POST of the file to the media service, and what the service says it stored.

The JWT goes only to a ``mediaBaseUrl`` that MEDIA_ALLOWED_HOSTS admits. The upload path differs between
public reports (``/file`` or ``/file/binary``): on a 404 the other one is tried once and, if it answers,
remembered for the life of the process. ``/file`` takes a one-part multipart body; ``/file/binary`` the raw bytes
with the file's ``Content-Type`` (Atlassian's ``createFileFromBinary``; multipart there would be stored with its
envelope, ATLASSIAN_FACTS.md "Media service (single upload)").

Atlassian's own ``POST /file`` answers ``{id, createdAt}`` without a size, so a reply without one is followed by
``GET /file/{id}`` (:meth:`MediaUploader.stored_file`): nothing is linked without the stored size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import quote

import requests

from .media_api import MEDIA_UPLOAD_PATHS, MediaCredentials, UploadedMedia, send_media, uploaded_media
from .multipart import MultipartBody, StreamedBody
from .url_policy import check_media_base_url


class MediaUploader:
    def __init__(self, session: requests.Session, allowed_hosts: Iterable[str], upload_path: str = "/file") -> None:
        self._session = session
        self._allowed_hosts = tuple(allowed_hosts)
        self.upload_path = upload_path

    def stored_file(self, credentials: MediaCredentials, media: UploadedMedia) -> UploadedMedia:
        """``media`` as the service stored it: the upload reply when it names a size, else ``GET /file/{id}``."""
        if media.size is not None:
            return media
        base_url = check_media_base_url(credentials.media_base_url, self._allowed_hosts)
        response = send_media(self._session, "GET", f"{base_url}/file/{quote(media.id, safe='')}", credentials)
        return uploaded_media(response)

    def upload(
        self,
        credentials: MediaCredentials,
        *,
        filename: str,
        content_type: str,
        size: int,
        open_chunks: Callable[[], Iterable[bytes]],
    ) -> UploadedMedia:
        base_url = check_media_base_url(credentials.media_base_url, self._allowed_hosts)

        def post(path: str, passes: tuple[int, ...] = ()) -> requests.Response:
            return self._post(base_url, path, credentials, filename, content_type, size, open_chunks, passes)

        response = post(self.upload_path, passes=(404,))
        if response.status_code == 404:  # the other path is tried once, and remembered if it answers
            other = next(p for p in MEDIA_UPLOAD_PATHS if p != self.upload_path)
            response = post(other)
            self.upload_path = other
        return uploaded_media(response)

    def _post(
        self,
        base_url: str,
        path: str,
        credentials: MediaCredentials,
        filename: str,
        content_type: str,
        size: int,
        open_chunks: Callable[[], Iterable[bytes]],
        passes: tuple[int, ...] = (),
    ) -> requests.Response:
        body: StreamedBody | MultipartBody
        if path == "/file/binary":
            body, body_type = StreamedBody(open_chunks, size), content_type
        else:
            body = MultipartBody(open_chunks, size, filename, content_type)
            body_type = body.content_type
        return send_media(
            self._session,
            "POST",
            f"{base_url}{path}?name={quote(filename, safe='')}",
            credentials,
            headers={"Content-Type": body_type},
            data=body,
            read_timeout="upload",
            passes=passes,
        )
