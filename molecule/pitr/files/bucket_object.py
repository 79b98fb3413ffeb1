# molecule pitr, run on the S3 server: damage one WAL segment of the repository through SeaweedFS's
# filer (its HTTP API on 127.0.0.1:8888 inside the container). argv: delete|corrupt, the filer path
# of archive/<stanza>, the segment's name. Prints the object's path.
import json
import os
import sys
import urllib.request

FILER = "http://127.0.0.1:8888"


def listing(path):
    request = urllib.request.Request(FILER + path.rstrip("/") + "/?limit=10000", headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer).get("Entries") or []


def directories(path):
    # Go's os.ModeDir bit in the filer's Mode.
    return [e["FullPath"] for e in listing(path) if int(e.get("Mode") or 0) & (1 << 31)]


def main():
    action, archive, segment = sys.argv[1:4]
    found = []
    for archive_id in directories(archive):
        for part in listing(archive_id):
            if part["FullPath"].rsplit("/", 1)[-1] == segment[:16]:
                found += [e["FullPath"] for e in listing(part["FullPath"])
                          if e["FullPath"].rsplit("/", 1)[-1].startswith(segment + "-")]
    if len(found) != 1:
        sys.exit("expected one object for %s under %s, found %s" % (segment, archive, found))
    path = found[0]
    if action == "delete":
        request = urllib.request.Request(FILER + path, method="DELETE")
    else:
        request = urllib.request.Request(FILER + path, data=os.urandom(4096), method="PUT")
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
    print(path)


main()
