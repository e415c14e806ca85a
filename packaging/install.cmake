# What `cmake --install` puts where (and so what the Debian package holds: see
# packaging/cpack.cmake). Relative destinations follow the prefix given at install
# time (/usr/local by default, /usr in the package); /etc is /etc whatever the
# prefix, because that is where hermeticd reads its configuration.
#
#   PREFIX/sbin/hermeticd                       the daemon
#   PREFIX/bin/hermeticctl                      the client
#   PREFIX/libexec/hermetic/hermetic-runner     spawned by hermeticd, one per sandbox;
#                                               found beside ../sbin (daemon/runner_process.cpp)
#   PREFIX/lib/systemd/system/hermeticd.{service,socket}
#   PREFIX/lib/tmpfiles.d/hermetic.conf         the state directory
#   PREFIX/share/man/man{1,5,8}/...             packaging/man.cmake
#   /etc/hermetic/hermeticd.conf                all defaults, commented; never overwritten
#   /etc/hermetic/policies/*.policy             the shipped admin profiles
include(GNUInstallDirs)
# Files and directories the package or an install creates: world-readable, root's.
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
  OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

install(TARGETS hermeticd DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS hermeticctl DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS hermetic-runner DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/hermetic)
# The fallback when hermeticd is not in PREFIX/sbin (e.g. copied elsewhere).
target_compile_definitions(hermetic_daemon PRIVATE HERMETIC_LIBEXEC_DIR="${CMAKE_INSTALL_FULL_LIBEXECDIR}/hermetic")

# systemd units (socket activation) and the tmpfiles.d entry for the state
# directory, where systemd looks under the prefix. The service's ExecStart names
# PREFIX/sbin/hermeticd for the prefix in force at install time (so cpack's /usr
# is right even when the build was configured for /usr/local): the unit is
# written at install time, not at configure time.
install(CODE "
  set(HERMETIC_UNIT_SOURCE \"${PROJECT_SOURCE_DIR}/systemd/hermeticd.service\")
  set(HERMETIC_UNIT_STAGING \"${CMAKE_BINARY_DIR}/systemd/install\")
  set(HERMETIC_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")
  include(\"${PROJECT_SOURCE_DIR}/packaging/install-units.cmake\")
")
install(FILES systemd/hermeticd.socket DESTINATION lib/systemd/system)
install(FILES systemd/hermetic.tmpfiles DESTINATION lib/tmpfiles.d RENAME hermetic.conf)

# The admin policy directory hermeticd reads (its --policy-dir default).
install(DIRECTORY policies/ DESTINATION /etc/hermetic/policies FILES_MATCHING PATTERN "*.policy")
# The config file: an administrator's edits survive a reinstall from source (the
# package marks it a conffile, so dpkg asks instead).
install(CODE "
  if(EXISTS \"\$ENV{DESTDIR}/etc/hermetic/hermeticd.conf\")
    message(STATUS \"Keeping: \$ENV{DESTDIR}/etc/hermetic/hermeticd.conf\")
  else()
    file(INSTALL DESTINATION \"/etc/hermetic\" TYPE FILE FILES \"${PROJECT_SOURCE_DIR}/config/hermeticd.conf\")
  endif()
")

include(${PROJECT_SOURCE_DIR}/packaging/man.cmake)
