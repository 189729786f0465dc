#!/bin/sh
# Installs unixODBC and (INSTALL_MSODBC=1, the default) Microsoft's ODBC Driver 18 for SQL Server.
# Runs at image build time as root; works on Ubuntu 22.04 (CUDA, JetPack 6) and Debian 12 (python slim).
set -eu
. /etc/os-release
apt-get update
if [ "${INSTALL_MSODBC:-1}" = "1" ]; then
    # The repository definition package; python3 fetches it so the image needs no curl.
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], "/tmp/ms-prod.deb")' \
        "https://packages.microsoft.com/config/${ID}/${VERSION_ID}/packages-microsoft-prod.deb"
    dpkg -i /tmp/ms-prod.deb
    rm -f /tmp/ms-prod.deb
    apt-get update
    ACCEPT_EULA=Y apt-get install -y --no-install-recommends msodbcsql18 unixodbc
else
    apt-get install -y --no-install-recommends unixodbc
fi
apt-get clean
rm -rf /var/lib/apt/lists/*
