# Run by `cmake --install` (packaging/install.cmake): installs hermeticd.service
# with ExecStart naming the installed daemon, CMAKE_INSTALL_PREFIX/SBINDIR/hermeticd.
# The source unit names /usr/local/sbin/hermeticd (the default prefix).
file(READ "${HERMETIC_UNIT_SOURCE}" unit)
if(IS_ABSOLUTE "${HERMETIC_SBINDIR}")
  set(daemon "${HERMETIC_SBINDIR}/hermeticd")
else()
  set(daemon "${CMAKE_INSTALL_PREFIX}/${HERMETIC_SBINDIR}/hermeticd")
endif()
string(REPLACE "/usr/local/sbin/hermeticd" "${daemon}" unit "${unit}")
file(WRITE "${HERMETIC_UNIT_STAGING}/hermeticd.service" "${unit}")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
  FILES "${HERMETIC_UNIT_STAGING}/hermeticd.service")
