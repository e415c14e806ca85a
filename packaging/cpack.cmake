# The Debian package: `cpack -G DEB` in a build directory (after the build) writes
# hermetic_VERSION_ARCH.deb. It holds what packaging/install.cmake installs, under
# the prefix /usr, plus the Debian files from packaging/debian/. Then
#
#     dpkg -i hermetic_*.deb && systemctl enable --now hermeticd.socket
#
# is the whole installation (docs/getting-started.md). scripts/package-test.sh
# builds it, lints it and checks what it installs.

# Debian's documentation directory: copyright (policy 12.5) and the changelog (12.7).
set(HERMETIC_DEB_DOC ${CMAKE_BINARY_DIR}/packaging/doc)
configure_file(${PROJECT_SOURCE_DIR}/packaging/debian/changelog ${HERMETIC_DEB_DOC}/changelog @ONLY)
add_custom_command(OUTPUT ${HERMETIC_DEB_DOC}/changelog.gz
  COMMAND sh -c "gzip -9n < \"$0\" > \"$1\"" ${HERMETIC_DEB_DOC}/changelog ${HERMETIC_DEB_DOC}/changelog.gz
  DEPENDS ${HERMETIC_DEB_DOC}/changelog VERBATIM)
add_custom_target(deb-changelog ALL DEPENDS ${HERMETIC_DEB_DOC}/changelog.gz)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/copyright ${HERMETIC_DEB_DOC}/changelog.gz
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/hermetic)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/lintian-overrides
  DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME hermetic)

# Every file under /etc is a conffile: dpkg keeps an administrator's changes.
file(GLOB hermetic_policies RELATIVE ${PROJECT_SOURCE_DIR}/policies ${PROJECT_SOURCE_DIR}/policies/*.policy)
list(SORT hermetic_policies)
set(HERMETIC_CONFFILES "/etc/hermetic/hermeticd.conf\n")
foreach(p IN LISTS hermetic_policies)
  string(APPEND HERMETIC_CONFFILES "/etc/hermetic/policies/${p}\n")
endforeach()
file(WRITE ${CMAKE_BINARY_DIR}/packaging/control/conffiles "${HERMETIC_CONFFILES}")
foreach(script postinst prerm postrm)
  file(COPY ${PROJECT_SOURCE_DIR}/packaging/debian/${script} DESTINATION ${CMAKE_BINARY_DIR}/packaging/control
    FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME hermetic)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "hermetic")
set(CPACK_PACKAGE_CONTACT "hermetic maintainers <maintainers@hermetic.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "kernel-assisted hermetic build sandbox daemon")
# /etc/hermetic is outside the prefix: cpack installs into a staging DESTDIR (never
# the host's /etc), with the prefix /usr whatever the build was configured for.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/hermetic/hermetic")
# The extended description (the synopsis is the summary above).
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "hermeticd, a privileged daemon, runs each build job that the unprivileged
client hermeticctl submits in fresh Linux namespaces, under seccomp filters,
as an unprivileged user without capabilities, with only a loopback network, a
private copy of its source and size, memory, process and time limits. A
determinism supervisor virtualizes time, randomness and file metadata, and
every job leaves a hash-chained, signed audit log and an in-toto attestation
of its outputs.
.
Members of the group hermetic may submit jobs; start the daemon with
systemctl enable --now hermeticd.socket.")
# The libraries the binaries link, from dpkg-shlibdeps (package dpkg-dev).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# adduser: postinst creates the group. The units need systemd; the daemon can run
# without it (hermeticd in the foreground or detached), so only recommended.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
# hermeticctl run --verify shows diffoscope's report of differing outputs.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "diffoscope")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_BINARY_DIR}/packaging/control/conffiles
  ${CMAKE_BINARY_DIR}/packaging/control/postinst
  ${CMAKE_BINARY_DIR}/packaging/control/prerm
  ${CMAKE_BINARY_DIR}/packaging/control/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
