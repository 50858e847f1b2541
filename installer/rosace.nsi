; ROSACE Windows installer (NSIS 3).
;
; Per-user install without administrator rights: the program goes to
; %LOCALAPPDATA%\Programs\ROSACE, shortcuts to the user's Start menu and desktop,
; the uninstaller entry to HKCU. The uninstaller removes the program only: the
; observatory configuration, API token, data and logs (in the user's AppData
; folders, written by ROSACE at run time) are kept.
;
; Built by installer/build.py:
;   makensis -DVERSION=0.1.0 -DPAYLOAD=<bundle folder> -DOUTFILE=<setup.exe> installer/rosace.nsi

Unicode true
SetCompressor /SOLID lzma

!ifndef VERSION
  !define VERSION "0.0.0"
!endif
!ifndef PAYLOAD
  !define PAYLOAD "..\build\dist\rosace"
!endif
!ifndef OUTFILE
  !define OUTFILE "rosace-${VERSION}-setup.exe"
!endif

!define APPNAME "ROSACE"
!define COMPANY "ROSACE"
!define DESCRIPTION "Robotic spectroscopic observatory: dome, scheduler, sequencer, reduction, share"
!define UNINSTKEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${APPNAME}"
!define DESKTOPEXE "rosace-desktop.exe"

Name "${APPNAME} ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\${APPNAME}"
InstallDirRegKey HKCU "Software\${APPNAME}" "InstallDir"
; No UAC prompt: everything lives in the user's own folders and registry hive.
RequestExecutionLevel user
ShowInstDetails show
ShowUninstDetails show

!include "MUI2.nsh"
!include "FileFunc.nsh"

!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\${DESKTOPEXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Open ROSACE now"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH

!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES

!insertmacro MUI_LANGUAGE "English"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APPNAME}"
VIAddVersionKey "FileDescription" "${APPNAME} installer"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "LegalCopyright" "BSD-3-Clause"

Section "ROSACE" SecMain
  SectionIn RO
  SetShellVarContext current
  ; A previous version's files go first, so that modules removed since then do
  ; not linger; user data is elsewhere and untouched.
  RMDir /r "$INSTDIR\_internal"
  SetOutPath "$INSTDIR"
  File /r "${PAYLOAD}\*.*"

  WriteUninstaller "$INSTDIR\uninstall.exe"
  WriteRegStr HKCU "Software\${APPNAME}" "InstallDir" "$INSTDIR"

  CreateDirectory "$SMPROGRAMS\${APPNAME}"
  CreateShortcut "$SMPROGRAMS\${APPNAME}\${APPNAME}.lnk" "$INSTDIR\${DESKTOPEXE}" "" "$INSTDIR\${DESKTOPEXE}" 0
  CreateShortcut "$SMPROGRAMS\${APPNAME}\${APPNAME} self-test.lnk" "$SYSDIR\cmd.exe" '/k ""$INSTDIR\rosace.exe" selftest"' "$INSTDIR\rosace.exe" 0
  CreateShortcut "$SMPROGRAMS\${APPNAME}\Uninstall ${APPNAME}.lnk" "$INSTDIR\uninstall.exe"
  CreateShortcut "$DESKTOP\${APPNAME}.lnk" "$INSTDIR\${DESKTOPEXE}" "" "$INSTDIR\${DESKTOPEXE}" 0

  ; "Apps & features" entry (per user).
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayName" "${APPNAME}"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTKEY}" "Publisher" "${COMPANY}"
  WriteRegStr HKCU "${UNINSTKEY}" "Comments" "${DESCRIPTION}"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayIcon" "$INSTDIR\${DESKTOPEXE}"
  WriteRegStr HKCU "${UNINSTKEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTKEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTKEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTKEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTKEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKCU "${UNINSTKEY}" "EstimatedSize" "$0"
SectionEnd

Section "Uninstall"
  SetShellVarContext current
  ; Only what the installer put there. The configuration (rosace.toml, api-token,
  ; desktop.json), the frames, spectra, databases and logs live in
  ; %LOCALAPPDATA%\rosace and are kept: an uninstall is not a data wipe.
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\rosace.exe"
  Delete "$INSTDIR\${DESKTOPEXE}"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"

  Delete "$SMPROGRAMS\${APPNAME}\${APPNAME}.lnk"
  Delete "$SMPROGRAMS\${APPNAME}\${APPNAME} self-test.lnk"
  Delete "$SMPROGRAMS\${APPNAME}\Uninstall ${APPNAME}.lnk"
  RMDir "$SMPROGRAMS\${APPNAME}"
  Delete "$DESKTOP\${APPNAME}.lnk"

  DeleteRegKey HKCU "${UNINSTKEY}"
  DeleteRegKey HKCU "Software\${APPNAME}"
SectionEnd
