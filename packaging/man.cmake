# Manual pages: docs/man/NAME.SECTION.md (pandoc markdown) is the source;
# docs/man/NAME.SECTION is the roff generated from it, committed so that a build
# without pandoc (setup.sh installs only the build dependencies) still installs
# them. With pandoc, the build regenerates each page into build/man/ and installs
# that one; scripts/package-test.sh fails when the committed roff is stale.
# Installed gzip -9n'd (Debian policy 12.1; -n: no name or time, reproducible).
set(HERMETIC_MAN_PAGES hermeticd.8 hermeticctl.1 hermetic-policy.5)
find_program(HERMETIC_PANDOC pandoc)
set(HERMETIC_MAN_DIR ${CMAKE_BINARY_DIR}/man)
file(MAKE_DIRECTORY ${HERMETIC_MAN_DIR})
set(man_outputs)
foreach(page IN LISTS HERMETIC_MAN_PAGES)
  string(REGEX REPLACE "^.*\\.([0-9])$" "\\1" section ${page})
  set(md ${PROJECT_SOURCE_DIR}/docs/man/${page}.md)
  if(HERMETIC_PANDOC)
    set(roff ${HERMETIC_MAN_DIR}/${page})
    add_custom_command(OUTPUT ${roff}
      COMMAND ${HERMETIC_PANDOC} --standalone --from markdown --to man --output ${roff} ${md}
      DEPENDS ${md}
      COMMENT "pandoc: ${page}" VERBATIM)
  else()
    set(roff ${PROJECT_SOURCE_DIR}/docs/man/${page})
  endif()
  set(gz ${HERMETIC_MAN_DIR}/${page}.gz)
  add_custom_command(OUTPUT ${gz}
    COMMAND sh -c "gzip -9n < \"$0\" > \"$1\"" ${roff} ${gz}
    DEPENDS ${roff} VERBATIM)
  list(APPEND man_outputs ${gz})
  install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(man ALL DEPENDS ${man_outputs})

# Every option and command of the --help texts is in the pages (and every config
# key in config/hermeticd.conf).
if(HERMETIC_TESTS)
  add_test(NAME ManPages.CoverHelp COMMAND ${PROJECT_SOURCE_DIR}/scripts/check-man-help.sh ${CMAKE_BINARY_DIR})
  # Not "unit": the ASan pass runs -L unit, and this checks texts, not memory.
  set_tests_properties(ManPages.CoverHelp PROPERTIES LABELS packaging)
endif()
