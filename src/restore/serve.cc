#include "restore/serve.h"

namespace sp::restore {

StatusOr<std::unique_ptr<VolumeServer>> VolumeServer::Start(repo::Repository& repo,
                                                            absl::string_view point_id,
                                                            absl::string_view volume,
                                                            const ServeOptions& options) {
  // Checked here too, so that an unknown point or volume is NotFound, not a server's log.
  SP_ASSIGN_OR_RETURN(repo::Manifest manifest, repo.GetRecoveryPoint(point_id));
  SP_ASSIGN_OR_RETURN(auto reader, repo.OpenVolume(manifest.id, volume));
  std::unique_ptr<VolumeServer> server(new VolumeServer());
  server->export_name_ = std::string(volume);
  server->size_ = reader->size();
  nbd::ServerOptions start;
  start.repo_path = repo.path();
  start.key_file = repo.options().key_file;
  start.point_id = manifest.id;
  start.volume = std::string(volume);
  start.socket_path = options.socket_path;
  start.port = options.port;
  start.work_dir = options.work_dir;
  SP_ASSIGN_OR_RETURN(server->server_, nbd::Server::Start(start));
  return server;
}

VolumeServer::~VolumeServer() = default;

bool VolumeServer::Running() { return server_->Running(); }

Status VolumeServer::Stop() { return server_->Stop(); }

}  // namespace sp::restore
