# Install rules and Debian packages (CPack's DEB generator; docs/packaging.md says why).
#   cmake -S . -B build-pkg -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON
#   cmake --build build-pkg --target ptibus_package_programs
#   (cd build-pkg && cpack -G DEB)   # ptibus-{broker,adapter,tools}_VERSION_ARCH.deb,
#                                    # ptibus-doc_VERSION_all.deb
# deploy/package-check.sh builds, checks, installs and lints them.
include(GNUInstallDirs)
set(_deb ${CMAKE_CURRENT_LIST_DIR}/debian)
set(_gen ${CMAKE_BINARY_DIR}/deploy)

# Man pages and changelogs are installed gzipped (gzip -9n: reproducible, as lintian asks).
set(_gz_files)
function(pt_gzip src name)
  set(out ${_gen}/${name}.gz)
  add_custom_command(OUTPUT ${out} COMMAND ${CMAKE_COMMAND} -E make_directory ${_gen}
                     COMMAND gzip -9n -c ${src} > ${out} DEPENDS ${src} VERBATIM)
  set(_gz_files ${_gz_files} ${out} PARENT_SCOPE)
endfunction()
pt_gzip(${CMAKE_CURRENT_LIST_DIR}/man/ptibusd.8 ptibusd.8)
pt_gzip(${CMAKE_CURRENT_LIST_DIR}/man/ptibusctl.1 ptibusctl.1)
pt_gzip(${CMAKE_CURRENT_LIST_DIR}/man/ptibus-adapter.8 ptibus-adapter.8)
# The Debian Maintainer: whoever builds and distributes these packages answers for them
# (the département's IT for its own repository). Set it when building packages to ship:
#   cmake -DPTIBUS_PACKAGE_MAINTAINER="DSI du Département <ptibus@example.fr>" ...
# The default names no real person: example.org is reserved (RFC 2606), never delivered.
set(PTIBUS_PACKAGE_MAINTAINER "ptibus maintainers <ptibus@example.org>"
    CACHE STRING "Maintainer of the Debian packages: \"Name <address>\"")
if(PTIBUS_PACKAGE_MAINTAINER MATCHES "@example\\.org>")
  message(STATUS "ptibus: packages built with the placeholder maintainer "
                 "(${PTIBUS_PACKAGE_MAINTAINER}); set PTIBUS_PACKAGE_MAINTAINER for packages to ship")
endif()
configure_file(${_deb}/changelog.in ${_gen}/changelog @ONLY)
pt_gzip(${_gen}/changelog changelog)

# The adapters' examples as installed: deploy/adapters/<id>.yaml with the package's key and
# state folders instead of paths relative to the file (adapter-paths.sed).
set(PT_ADAPTER_PROGRAMS departement pole-emploi caf msa region mission-locale)
file(GLOB _adapter_src CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/adapters/*.yaml)
set(_adapter_yaml)
set(_adapter_conffiles)
foreach(src ${_adapter_src})
  get_filename_component(name ${src} NAME)
  set(out ${_gen}/adapters/${name})
  add_custom_command(OUTPUT ${out} COMMAND ${CMAKE_COMMAND} -E make_directory ${_gen}/adapters
                     COMMAND sed -f ${CMAKE_CURRENT_LIST_DIR}/adapter-paths.sed ${src} > ${out}
                     DEPENDS ${src} ${CMAKE_CURRENT_LIST_DIR}/adapter-paths.sed VERBATIM)
  list(APPEND _adapter_yaml ${out})
  string(APPEND _adapter_conffiles "/etc/ptibus/adapters/${name}\n")
endforeach()
file(CONFIGURE OUTPUT ${_gen}/adapter-control/conffiles CONTENT "${_adapter_conffiles}")
set(PT_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
configure_file(${CMAKE_CURRENT_LIST_DIR}/adapter-exec.in ${_gen}/adapter-exec @ONLY
               FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                WORLD_READ WORLD_EXECUTE)
# One man page for the six programs: each name is a link to it.
set(_man_links)
foreach(p ${PT_ADAPTER_PROGRAMS})
  file(CREATE_LINK ptibus-adapter.8.gz ${_gen}/ptibus-adapter-${p}.8.gz SYMBOLIC)
  list(APPEND _man_links ${_gen}/ptibus-adapter-${p}.8.gz)
endforeach()
add_custom_target(ptibus_package_files ALL DEPENDS ${_gz_files} ${_adapter_yaml})
# Everything the packages hold, for a build that makes only them (package-check.sh).
set(_programs ptibusd ptibusctl)
foreach(p ${PT_ADAPTER_PROGRAMS})
  list(APPEND _programs ptibus-adapter-${p})
endforeach()
add_custom_target(ptibus_package_programs DEPENDS ${_programs} ptibus_package_files)

# ptibus-tools: ptibusctl, which both a broker's machine and a partner's need (keygen,
# fingerprint; docs/packaging.md says why a package of its own).
install(TARGETS ptibusctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
install(FILES ${_gen}/ptibusctl.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT tools)
install(FILES ${_deb}/copyright ${_gen}/changelog.gz
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/ptibus-tools COMPONENT tools)

# ptibus-broker
install(TARGETS ptibusd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT broker)
install(FILES ${_gen}/ptibusd.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT broker)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/ptibusd.service DESTINATION /lib/systemd/system
        COMPONENT broker)
# The example configuration is a conffile (deploy/debian/conffiles): dpkg never
# overwrites an edited copy.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/broker.yaml DESTINATION /etc/ptibus COMPONENT broker)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/broker.yaml DESTINATION ${CMAKE_INSTALL_DATADIR}/ptibus
        RENAME broker.yaml.example COMPONENT broker)
# ptibusctl's settings: an example each administrator copies (docs/operations.md).
install(FILES ${CMAKE_CURRENT_LIST_DIR}/ptibusctl.yaml DESTINATION ${CMAKE_INSTALL_DATADIR}/ptibus
        RENAME ptibusctl.yaml.example COMPONENT broker)
install(FILES ${_deb}/copyright ${_gen}/changelog.gz
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/ptibus-broker COMPONENT broker)

# ptibus-adapter
foreach(p ${PT_ADAPTER_PROGRAMS})
  install(TARGETS ptibus-adapter-${p} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
          COMPONENT adapter)
endforeach()
install(PROGRAMS ${_gen}/adapter-exec DESTINATION lib/ptibus COMPONENT adapter)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/ptibus-adapter@.service DESTINATION /lib/systemd/system
        COMPONENT adapter)
install(FILES ${_gen}/ptibus-adapter.8.gz ${_man_links} DESTINATION ${CMAKE_INSTALL_MANDIR}/man8
        COMPONENT adapter)
# The examples are conffiles (generated list: adapter-control/conffiles); the pristine
# copies are for comparison after edits.
install(FILES ${_adapter_yaml} DESTINATION /etc/ptibus/adapters COMPONENT adapter)
install(FILES ${_adapter_yaml} DESTINATION ${CMAKE_INSTALL_DATADIR}/ptibus/adapters
        COMPONENT adapter)
install(FILES ${_deb}/copyright ${_gen}/changelog.gz
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/ptibus-adapter COMPONENT adapter)

# ptibus-doc
file(GLOB _docs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${_docs}
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/ptibus COMPONENT doc)
install(FILES ${_deb}/copyright ${_gen}/changelog.gz
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/ptibus-doc COMPONENT doc)

set(CPACK_COMPONENTS_ALL broker adapter tools doc)
set(CPACK_DEB_COMPONENT_INSTALL ON)
# "ptibus-tools (= VERSION)" in Depends from CPACK_COMPONENT_<C>_DEPENDS.
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ptibus)
set(CPACK_PACKAGE_VENDOR "ptibus")
set(CPACK_PACKAGE_CONTACT "${PTIBUS_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_BROKER_PACKAGE_NAME ptibus-broker)
set(CPACK_DEBIAN_BROKER_PACKAGE_SECTION net)
set(CPACK_DEBIAN_BROKER_PACKAGE_DEPENDS adduser)
set(CPACK_COMPONENT_BROKER_DEPENDS tools)
set(CPACK_DEBIAN_BROKER_PACKAGE_RECOMMENDS lmdb-utils)
set(CPACK_DEBIAN_BROKER_PACKAGE_SUGGESTS ptibus-doc)
set(CPACK_COMPONENT_BROKER_DESCRIPTION
    "message broker of a social-insertion partner network\n\
ptibusd routes signed, journaled messages between the partners of a\n\
Pacte Territorial pour l'Insertion (departement, France Travail, CAF, MSA,\n\
Missions Locales) over ZeroMQ CURVE, and verifies its journal with\n\
ptibusctl (package ptibus-tools).")
set(CPACK_DEBIAN_BROKER_PACKAGE_CONTROL_EXTRA ${_deb}/conffiles ${_deb}/postinst ${_deb}/prerm
                                              ${_deb}/postrm)

set(CPACK_DEBIAN_ADAPTER_PACKAGE_NAME ptibus-adapter)
set(CPACK_DEBIAN_ADAPTER_PACKAGE_SECTION net)
set(CPACK_DEBIAN_ADAPTER_PACKAGE_DEPENDS adduser)
set(CPACK_COMPONENT_ADAPTER_DEPENDS tools)
set(CPACK_DEBIAN_ADAPTER_PACKAGE_SUGGESTS ptibus-doc)
set(CPACK_COMPONENT_ADAPTER_DESCRIPTION
    "partner adapters of a social-insertion message network\n\
The six ptibus adapters (departement, France Travail, CAF, MSA, Region,\n\
Missions Locales) run at the partners of a Pacte Territorial pour l'Insertion:\n\
they take the partner's messages (HTTP API, dropped files in its native\n\
formats) into a durable spool, publish them to the ptibus broker over ZeroMQ\n\
CURVE, and hand the broker's deliveries to the partner (outbox, signed\n\
webhook or pull). One systemd unit per partner: ptibus-adapter@ID.")
set(CPACK_DEBIAN_ADAPTER_PACKAGE_CONTROL_EXTRA
    ${_gen}/adapter-control/conffiles ${_deb}/adapter/postinst ${_deb}/adapter/prerm
    ${_deb}/adapter/postrm)

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME ptibus-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION net)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SUGGESTS ptibus-doc)
set(CPACK_COMPONENT_TOOLS_DESCRIPTION
    "key, administration and journal tools of the ptibus message broker\n\
ptibusctl generates the CURVE key pairs of the broker, the partners and the\n\
administrators, prints key fingerprints, administers a running broker over\n\
its admin socket (stats, dead letters, requeue, replay) and verifies the\n\
signed journal. Needed on the broker's machine and at each partner's.")

set(CPACK_DEBIAN_DOC_PACKAGE_NAME ptibus-doc)
set(CPACK_DEBIAN_DOC_PACKAGE_SECTION doc)
set(CPACK_DEBIAN_DOC_PACKAGE_ARCHITECTURE all)
set(CPACK_COMPONENT_DOC_DESCRIPTION
    "documentation of the ptibus message broker\n\
Architecture, protocol, configuration, routing, journal, operations and\n\
threat model of ptibus, in Markdown, under /usr/share/doc/ptibus.")
include(CPack)
